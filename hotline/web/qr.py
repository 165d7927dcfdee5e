"""QR codes (segno) as data URIs, so pages need no extra request and CSP allows them."""

from __future__ import annotations

import segno


def qr_data_uri(url: str, scale: int = 6) -> str:
    """A PNG QR code of `url` (error correction M: survives a scuffed poster)."""
    return str(segno.make(url, error="m").png_data_uri(scale=scale, border=4))
