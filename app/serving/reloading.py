"""The registry follows its folders while the server runs (issue 24): a new checkpoint is loaded
and served, a replaced one swapped in once its new file has passed every check, a removed one
dropped, a bad one refused (listed in /readyz and logged) while everything else serves on.

A periodic scan (every NAMELAB_RELOAD_SECONDS, 0.5 s by default), not a filesystem watcher
(inotify, `watchfiles`): a scan is a listing and a stat of each checkpoint file (name, size,
mtime_ns, inode: Registry.scan), a bounded cost of a few dozen system calls; it needs no
dependency, and it sees a change on every filesystem, Docker volumes and NFS included (where
inotify sees only the writes of its own machine: the replicas share the users' folder). A
watcher would react a few hundred milliseconds sooner; 0.5 s is well within the 2 s promised.

The scan runs on a pool thread (a stat on a network filesystem may block; it runs no model
code), and each changed file is loaded on the model thread, as at start-up
(app/serving/worker.py): one job per file, as a client of its own in the thread's round, so a
load holds the model thread for that file's own load only, and other clients' requests run
between two files. The page cache and every
per-model cache follow by the identity of the LoadedModel (app/serving/pagecache.py).
"""

from __future__ import annotations

import asyncio
import logging

from app.serving import memory, worker
from app.store.registry import Registry

log = logging.getLogger("namelab.reload")


class Reloader:
    def __init__(self, registry: Registry, seconds: float) -> None:
        self.registry, self.seconds = registry, seconds
        self.lock = asyncio.Lock()  # one pass at a time: the loop's and a DELETE's
        self.task: asyncio.Task | None = None

    async def sync(self) -> None:
        """One pass: scan the folders, bring each changed file's model up to date."""
        async with self.lock:
            listing, listed = await asyncio.to_thread(self.registry.scan)
            changed = self.registry.changed(listing, listed)
            for path in changed:
                # the server's own job, not counted against NAMELAB_MAX_QUEUE: a busy queue
                # delays a load by a turn, it never refuses one
                await asyncio.wrap_future(worker.executor().submit(
                    self.registry.update, path, listing.get(path)))
            if changed:
                await asyncio.to_thread(memory.trim)  # what the loads freed (memory.py)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.seconds)
            try:
                await self.sync()
            except Exception:  # a bug: logged, and the next pass tries again
                log.exception("reloading the models failed")

    def start(self) -> None:
        if self.seconds > 0:
            self.task = asyncio.create_task(self._loop(), name="namelab-reload")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass
