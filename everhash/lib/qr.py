"""QR codes as SVG, through segno (the one module that imports it)."""

from __future__ import annotations

import io

import segno


def qr_svg(data: str, *, title: str) -> bytes:
    """`data` as a QR code (error correction M: readable when printed small or a little damaged)."""
    code = segno.make(data, error="m", micro=False)
    out = io.BytesIO()
    code.save(out, kind="svg", scale=8, border=4, title=title, dark="#000", light="#fff", xmldecl=False)
    return out.getvalue()
