"""Static files named by their content: URLs a browser may keep for a year.

With DEBUG off the manifest storage already writes the content hash into each file name. With
DEBUG on (files straight from the finders), `asset_url` appends `?v=<hash of the content>`, so the
URL changes whenever the file does; `static_headers` lets browsers keep BokehJS (the largest file,
which changes only with the bokeh package) for a year either way.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

YEAR_SECONDS = 31_536_000
LONG_CACHE_PREFIXES = ("bokeh/",)


def asset_url(name: str) -> str:
    """The URL of static file `name`, naming its content."""
    from django.contrib.staticfiles import finders
    from django.contrib.staticfiles.storage import ManifestFilesMixin, staticfiles_storage
    from django.templatetags.static import static

    if isinstance(staticfiles_storage, ManifestFilesMixin):
        return staticfiles_storage.url(name)
    path = finders.find(name)
    if not path:
        return static(name)
    stat = Path(path).stat()
    return f"{static(name)}?v={_content_hash(path, stat.st_mtime_ns, stat.st_size)}"


@lru_cache(maxsize=256)
def _content_hash(path: str, mtime_ns: int, size: int) -> str:
    return hashlib.blake2b(Path(path).read_bytes(), digest_size=6).hexdigest()


def static_headers(headers, path: str, url: str) -> None:
    """WhiteNoise's header hook: a year's cache for the files under LONG_CACHE_PREFIXES (their
    pages always ask for them by a URL naming the content). Settings import this module, so it
    imports nothing from Django."""
    name = url.split("/static/", 1)[1] if "/static/" in url else url
    if name.startswith(LONG_CACHE_PREFIXES) and "immutable" not in headers.get("Cache-Control", ""):
        headers["Cache-Control"] = f"public, max-age={YEAR_SECONDS}, immutable"
