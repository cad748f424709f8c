"""The ``otpauth://`` URI and its QR codes (the secret is rendered, never stored)."""

from __future__ import annotations

import base64
import re
import struct
import zlib
from collections.abc import Sequence
from urllib.parse import quote

import segno
from django.views.decorators.debug import sensitive_variables

# segno builds the module matrix (one bytearray per row, 1 = dark); the two small writers
# below turn it into SVG and PNG. segno's own writers walk every pixel in Python (the PNG
# one packs bits with functools.reduce per scaled pixel) and cost ~5x the matrix itself.
QR_BORDER = 4  # the quiet zone the QR specification asks for, in modules
SVG_SCALE = 4  # pixels per module of the SVG's intrinsic size (it scales without loss)
PNG_SCALE = 5  # pixels per module of the PNG

_DARK_RUN = re.compile(rb"\x01+")  # matched on the raw row: no translation to digits


# Stands in for a colon inside the label's account name. Every reader splits the label at its
# first colon, literal or "%3A" (some decode the label before splitting), so a colon of the
# account itself would move the split; U+FF1A still reads as a colon.
LABEL_COLON = "\uff1a"


@sensitive_variables("secret")
def build_otpauth_uri(*, secret: str, issuer: str, account: str) -> str:
    """Return the key URI authenticator apps read (label and issuer RFC 3986-encoded).

    The label is ``issuer:account`` with no other colon in it (Google's Key Uri Format): a
    colon of the account becomes U+FF1A, surrounding spaces are dropped (some readers strip
    those after the separator, others keep them). The ``issuer`` parameter is the issuer
    exactly; an issuer with a colon is left out of the label, since readers refuse a label
    prefix that differs from the parameter, and apps then show the parameter.

    Built by hand because Cognito's secrets (and moto's fixed one) are not always the
    length OTP libraries insist on. ``algorithm``, ``digits`` and ``period`` are left out:
    Cognito's codes are SHA1, 6 digits, 30 s, which is what the key URI format means by
    their absence, and the 34 characters they take cost one or two QR versions (a
    Cognito-sized secret with a short label: version 8, 49 modules a side, instead of 6 and
    41), which is slower to render and harder to scan.
    """
    # str(): an adapter may return a lazy translation, which quote() does not take.
    issuer, account = str(issuer), str(account)
    issuer_part = quote(issuer, safe="")
    account_part = quote(account.strip().replace(":", LABEL_COLON), safe="")
    label = account_part if ":" in issuer else f"{issuer_part}:{account_part}"
    return f"otpauth://totp/{label}?secret={quote(secret, safe='')}&issuer={issuer_part}"


def render_qr(uri: str, *, svg: bool = True, png: bool = True) -> dict[str, str | None]:
    """Return the QR code of ``uri`` as ``data:`` URIs.

    Error level L without boost and a fixed mask: an otpauth URI is shown on a screen, not
    printed on a scratched label, and searching all eight masks costs more than the rest of
    the request.
    """
    matrix = segno.make_qr(uri, error="l", boost_error=False, mask=0).matrix
    return {
        "qr_code_svg": _svg_data_uri(matrix) if svg else None,
        "qr_code_png": _png_data_uri(matrix) if png else None,
    }


def _svg_data_uri(matrix: Sequence[bytearray]) -> str:
    """Draw each horizontal run of dark modules as one stroke of a single path."""
    size = len(matrix) + 2 * QR_BORDER
    strokes: list[str] = []
    for y, row in enumerate(matrix):
        # The row's " <y>.5h" is formatted once, as text: formatting the float per run
        # cost about as much as finding the runs.
        y_text = f" {QR_BORDER + y}.5h"
        strokes += [
            f"M{QR_BORDER + run.start()}{y_text}{run.end() - run.start()}"
            for run in _DARK_RUN.finditer(row)
        ]
    runs = "".join(strokes)
    pixels = size * SVG_SCALE
    document = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{pixels}" height="{pixels}" '
        f'viewBox="0 0 {size} {size}"><path fill="#fff" d="M0 0h{size}v{size}h-{size}z"/>'
        f'<path stroke="#000" d="{runs}"/></svg>'
    )
    return "data:image/svg+xml;base64," + base64.b64encode(document.encode("ascii")).decode()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def _png_data_uri(matrix: Sequence[bytearray]) -> str:
    """Encode a 1-bit greyscale PNG (0 = black): one packed scanline per module row,
    repeated ``PNG_SCALE`` times, so no per-pixel work happens in Python."""
    size = (len(matrix) + 2 * QR_BORDER) * PNG_SCALE
    row_bytes = (size + 7) // 8
    # Each module becomes PNG_SCALE bits; the row is padded with white up to a whole byte.
    widen = {0: "1" * PNG_SCALE, 1: "0" * PNG_SCALE}
    quiet = "1" * (QR_BORDER * PNG_SCALE)
    padding = "1" * (row_bytes * 8 - size)
    blank = b"\0" + b"\xff" * row_bytes  # filter byte 0 (None), then all white
    scanlines = [blank] * (QR_BORDER * PNG_SCALE)
    for row in matrix:
        bits = quiet + row.decode("latin-1").translate(widen) + quiet + padding
        scanlines += [b"\0" + int(bits, 2).to_bytes(row_bytes, "big")] * PNG_SCALE
    scanlines += [blank] * (QR_BORDER * PNG_SCALE)
    header = struct.pack(">2I5B", size, size, 1, 0, 0, 0, 0)  # 1 bit/pixel, greyscale
    image = b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            _png_chunk(b"IHDR", header),
            _png_chunk(b"IDAT", zlib.compress(b"".join(scanlines))),
            _png_chunk(b"IEND", b""),
        )
    )
    return "data:image/png;base64," + base64.b64encode(image).decode("ascii")
