"""The QR codes of the otpauth URI: exact pixels, and real decoders read back the URI."""

from __future__ import annotations

import base64
import shutil
import struct
import subprocess
import zlib
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import segno

from cognito_mfa.otpauth import PNG_SCALE, QR_BORDER, build_otpauth_uri, render_qr
from tests.support.services import require_service

URIS = [
    build_otpauth_uri(secret="asdfasdfasdf", issuer="Example Site", account="alice@example.com"),
    # A Cognito-sized secret and non-ASCII names (percent-encoded): a larger QR version.
    build_otpauth_uri(
        secret="JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXPJBSW",
        issuer="Zoë & Co — Staging",
        account="jürgen.müller+mfa@example.org",
    ),
]


def test_uri_is_the_key_uri_format_with_cognitos_defaults_left_implicit() -> None:
    uri = URIS[1]
    parts = urlsplit(uri)
    assert (parts.scheme, parts.netloc) == ("otpauth", "totp")
    assert unquote(parts.path) == "/Zoë & Co — Staging:jürgen.müller+mfa@example.org"
    # SHA1, 6 digits, 30 s are what an absent algorithm/digits/period mean: Cognito's TOTP.
    assert parse_qs(parts.query) == {
        "secret": ["JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXPJBSW"],
        "issuer": ["Zoë & Co — Staging"],
    }


def test_a_cognito_sized_secret_fits_qr_version_6() -> None:
    uri = build_otpauth_uri(
        secret="JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXPJBSW",
        issuer="Example Site",
        account="alice@example.com",
    )
    assert segno.make_qr(uri, error="l", boost_error=False, mask=0).version <= 6


def _payload(data_uri: str, media_type: str) -> bytes:
    prefix = f"data:{media_type};base64,"
    assert data_uri.startswith(prefix)
    return base64.b64decode(data_uri[len(prefix) :], validate=True)


def _png_pixels(png: bytes) -> list[list[int]]:
    """Decode the 1-bit greyscale PNG the app writes (1 = white) into rows of pixels."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    offset, chunks = 8, {}
    while offset < len(png):
        (length,) = struct.unpack(">I", png[offset : offset + 4])
        kind, data = png[offset + 4 : offset + 8], png[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", png[offset + 8 + length : offset + 12 + length])
        assert crc == zlib.crc32(kind + data)
        chunks[kind] = chunks.get(kind, b"") + data
        offset += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">2I5B", chunks[b"IHDR"])
    assert (depth, colour, interlace) == (1, 0, 0)
    raw = zlib.decompress(chunks[b"IDAT"])
    stride = 1 + (width + 7) // 8
    assert len(raw) == stride * height
    rows = []
    for y in range(height):
        line = raw[y * stride : (y + 1) * stride]
        assert line[0] == 0  # filter type None
        bits = int.from_bytes(line[1:], "big")
        total = (stride - 1) * 8
        rows.append([(bits >> (total - 1 - x)) & 1 for x in range(width)])
    return rows


@pytest.mark.parametrize("uri", URIS)
def test_png_pixels_are_the_qr_matrix_with_its_quiet_zone(uri: str) -> None:
    matrix = segno.make_qr(uri, error="l", boost_error=False, mask=0).matrix
    pixels = _png_pixels(_payload(render_qr(uri)["qr_code_png"] or "", "image/png"))
    modules = len(matrix) + 2 * QR_BORDER
    assert len(pixels) == len(pixels[0]) == modules * PNG_SCALE
    for y in range(modules):
        for x in range(modules):
            inside = QR_BORDER <= x < modules - QR_BORDER and QR_BORDER <= y < modules - QR_BORDER
            dark = inside and matrix[y - QR_BORDER][x - QR_BORDER] == 1
            block = {
                pixels[y * PNG_SCALE + dy][x * PNG_SCALE + dx]
                for dy in range(PNG_SCALE)
                for dx in range(PNG_SCALE)
            }
            assert block == {0 if dark else 1}, (x, y)


def test_only_the_requested_formats_are_rendered() -> None:
    assert render_qr(URIS[0], png=False)["qr_code_png"] is None
    assert render_qr(URIS[0], svg=False)["qr_code_svg"] is None
    both = render_qr(URIS[0])
    assert both["qr_code_svg"]
    assert both["qr_code_png"]


def _zbar(image: Path) -> str:
    zbarimg = shutil.which("zbarimg")
    require_service("zbarimg", zbarimg is not None, "install zbar-tools")
    result = subprocess.run(
        [str(zbarimg), "--quiet", "--raw", str(image)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.rstrip("\n")


@pytest.mark.parametrize("uri", URIS)
def test_png_decodes_to_exactly_the_uri(uri: str, tmp_path: Path) -> None:
    image = tmp_path / "qr.png"
    image.write_bytes(_payload(render_qr(uri)["qr_code_png"] or "", "image/png"))
    assert _zbar(image) == uri


def _svg_rasteriser() -> bool:
    # ImageMagick hands SVG to librsvg's rsvg-convert (or has a built-in SVG coder).
    if shutil.which("convert") is None:
        return False
    if shutil.which("rsvg-convert"):
        return True
    formats = subprocess.run(
        ["convert", "-list", "format"], capture_output=True, text=True, timeout=60, check=False
    )
    return any(line.split()[:1] in (["SVG"], ["SVG*"]) for line in formats.stdout.splitlines())


@pytest.mark.parametrize("uri", URIS)
def test_svg_converts_and_decodes_to_exactly_the_uri(uri: str, tmp_path: Path) -> None:
    require_service(
        "ImageMagick with SVG support", _svg_rasteriser(), "install imagemagick librsvg2-bin"
    )
    svg = _payload(render_qr(uri)["qr_code_svg"] or "", "image/svg+xml")
    assert svg.startswith(b'<svg xmlns="http://www.w3.org/2000/svg"')
    source, image = tmp_path / "qr.svg", tmp_path / "qr.png"
    source.write_bytes(svg)
    converted = subprocess.run(
        ["convert", str(source), str(image)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert converted.returncode == 0, converted.stderr
    assert _zbar(image) == uri


def test_a_lazy_translation_as_issuer_is_quoted_like_text() -> None:
    from django.utils.translation import gettext_lazy

    uri = build_otpauth_uri(secret="JBSWY3DPEHPK3PXP", issuer=gettext_lazy("My Site"), account="a")
    assert uri == "otpauth://totp/My%20Site:a?secret=JBSWY3DPEHPK3PXP&issuer=My%20Site"
