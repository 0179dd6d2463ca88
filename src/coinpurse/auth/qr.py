"""QR codes for two-factor enrolment, drawn on the server (segno), so the TOTP secret is never
sent to a third-party QR service and pages work offline."""

from __future__ import annotations

import segno


def qr_data_uri(text: str) -> str:
    """An SVG ``data:`` URI, which a page shows in an ``<img>`` under ``img-src 'self' data:``."""
    qr = segno.make(text, error="m")
    uri: str = qr.svg_data_uri(scale=4, border=2, dark="#000", light="#fff")
    return uri
