"""The ``otpauth://`` URI and its QR codes (the secret is rendered, never stored)."""

from __future__ import annotations

from urllib.parse import quote

import segno


def build_otpauth_uri(*, secret: str, issuer: str, account: str) -> str:
    """Return the key URI authenticator apps read (issuer and label RFC 3986-encoded).

    Built by hand because Cognito's secrets (and moto's fixed one) are not always the
    length OTP libraries insist on.
    """
    issuer_part = quote(issuer, safe="")
    label = f"{issuer_part}:{quote(account, safe='')}"
    return (
        f"otpauth://totp/{label}?secret={quote(secret, safe='')}&issuer={issuer_part}"
        "&algorithm=SHA1&digits=6&period=30"
    )


def render_qr(uri: str, *, svg: bool = True, png: bool = True) -> dict[str, str | None]:
    """Return the QR code of ``uri`` as ``data:`` URIs.

    Error level L without boost and a fixed mask: an otpauth URI is shown on a screen, not
    printed on a scratched label, and searching all eight masks costs more than the rest of
    the request.
    """
    code = segno.make_qr(uri, error="l", boost_error=False, mask=0)
    return {
        "qr_code_svg": code.svg_data_uri(scale=4, border=4) if svg else None,
        "qr_code_png": code.png_data_uri(scale=5, border=4) if png else None,
    }
