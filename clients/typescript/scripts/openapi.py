"""Print Coinpurse's OpenAPI document, as ``coinpurse serve`` publishes it at /openapi.json.

The document does not depend on the settings (every route is always mounted), so any valid
configuration gives the same bytes.
"""

from __future__ import annotations

import json
import sys

from coinpurse.app import create_app
from coinpurse.config import Settings


def document() -> str:
    doc = create_app(Settings()).openapi()
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(document())
