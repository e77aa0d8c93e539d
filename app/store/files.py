"""Files written whole or not at all: what every writer of the store (checkpoints, the names'
history table, training jobs' state) uses, so an interrupted write never leaves half a file in
place of a good one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomically(path: Path, data: bytes, replace: bool = True) -> None:
    """`data` as the file `path`: written to a temporary file beside it (`.NAME.*.tmp`, which
    the registry's scan ignores), readable by all (a server or replica may run as another
    user), fsynced, then renamed over `path`; with replace=False linked where no file is
    instead (FileExistsError if one appeared: O_EXCL for a rename). On any error the
    temporary file is removed and `path` is as it was. OSError from creating it as raised."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
            os.unlink(tmp)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
