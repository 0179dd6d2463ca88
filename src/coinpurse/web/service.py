"""The pages' assets: our own ES modules, CSS and SVG under ``static/``, read once when the
package is imported, with a build id that is a hash of their contents (so their URLs change
with every release and may be cached for a year). No third-party front-end code."""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from importlib import resources

from coinpurse.web.schemas import shell

TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
         ".svg": "image/svg+xml", ".html": "text/html; charset=utf-8"}


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    media_type: str


def _load() -> tuple[dict[str, Asset], str]:
    root = resources.files("coinpurse.web") / "static"
    assets: dict[str, Asset] = {}
    digest = hashlib.sha256()
    for item in sorted(root.iterdir(), key=lambda p: p.name):
        if not item.is_file() or item.name.startswith("."):
            continue
        body = item.read_bytes()
        suffix = "." + item.name.rsplit(".", 1)[-1]
        media = TYPES.get(suffix) or mimetypes.guess_type(item.name)[0] or "text/plain"
        assets[item.name] = Asset(body, media)
        digest.update(item.name.encode() + b"\0" + body)
    return assets, digest.hexdigest()[:12]


ASSETS, BUILD = _load()
WALLET_HTML = shell("Coinpurse wallet", "wallet.js", BUILD)
CONSOLE_HTML = shell("Coinpurse console", "console.js", BUILD)


def asset(name: str) -> Asset | None:
    return ASSETS.get(name)
