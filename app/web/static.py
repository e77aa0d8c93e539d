"""Static files with content-hashed URLs: cached for a year when the URL names the content.

Pages link `path_for('static', path='/style.css')` (app/web/templating.py), which is
`static_url('style.css')` = `/static/style.css?v=<hash of the file's bytes>`. A request whose
`v` is the hash of the file's bytes right now gets `Cache-Control: public, max-age=31536000,
immutable`: a new file has a new hash, hence a new URL, so a browser never keeps a stale copy.
Any other request (no `v`, or a `v` of an older file) gets `no-cache`. Every response carries an
`ETag` that is that same content hash, not Starlette's default (size and modification time), and
`If-None-Match` gets a 304.

The hash is computed from the bytes on every call (the files are a few KB), so it can never
describe an older file.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from starlette.datastructures import Headers, QueryParams
from starlette.responses import FileResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from app.config import STATIC_DIR
from app.serving.pagecache import matches

IMMUTABLE = "public, max-age=31536000, immutable"
MOUNT = "/static"  # where create_app mounts the files (app/main.py)


def content_hash(path: Path | str) -> str:
    return hashlib.blake2b(Path(path).read_bytes(), digest_size=8).hexdigest()


def static_url(name: str) -> str:
    """The URL of a file of static/, naming its content."""
    return f"{MOUNT}/{name}?v={content_hash(STATIC_DIR / name)}"


class HashedStaticFiles(StaticFiles):
    def file_response(self, full_path: str | os.PathLike, stat_result: os.stat_result,
                      scope: Scope, status_code: int = 200) -> Response:
        digest = content_hash(full_path)
        etag = f'"{digest}"'
        wanted = QueryParams(scope.get("query_string", b"")).get("v")
        headers = {"ETag": etag, "Cache-Control": IMMUTABLE if wanted == digest else "no-cache"}
        condition = Headers(scope=scope).get("if-none-match")
        if condition is not None and matches(condition.encode(), etag.encode()):
            return Response(status_code=304, headers=headers)
        response = FileResponse(full_path, status_code=status_code, stat_result=stat_result)
        response.headers.update(headers)
        return response
