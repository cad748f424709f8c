"""Validators shared by the REST API's serializers and the admin's forms."""

from __future__ import annotations

import unicodedata

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

# Characters a device name may not hold: controls (Cc, the C1 ones such as NEL and CSI too),
# format characters (Cf: bidi overrides, zero-width spaces, a BOM, stray tag characters), lone
# surrogates (Cs), private use (Co), the line and paragraph separators (Zl, Zp) and Unicode's
# noncharacters. The name is shown in Cognito, in authenticator lists and in the admin: such
# characters reorder, hide or break what a reader sees. Code points unassigned in this
# Python's Unicode tables (Cn) pass: that is where the emoji newer than those tables live.
FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})

# Zero-width (non-)joiners are format characters that writing needs: ZWNJ in Persian words,
# ZWJ in emoji sequences. Accepted between two visible characters, never at an edge or in a run.
JOINERS = frozenset({"\u200c", "\u200d"})

# The flags of England, Scotland and Wales are a black flag, tag letters and a cancel tag.
BLACK_FLAG = "\U0001f3f4"
TAG_LETTERS = range(0xE0020, 0xE007F)
CANCEL_TAG = "\U000e007f"


def _forbidden(char: str) -> bool:
    code = ord(char)
    noncharacter = 0xFDD0 <= code <= 0xFDEF or code & 0xFFFE == 0xFFFE
    return noncharacter or unicodedata.category(char) in FORBIDDEN_CATEGORIES


def _visible(char: str) -> bool:
    return not char.isspace() and not _forbidden(char)


def _end_of_tag_sequence(value: str, index: int) -> int:
    """If an emoji tag sequence starts at ``index``, return the index after it, else 0."""
    if value[index] != BLACK_FLAG:
        return 0
    end = index + 1
    while end < len(value) and ord(value[end]) in TAG_LETTERS:
        end += 1
    if end > index + 1 and end < len(value) and value[end] == CANCEL_TAG:
        return end + 1
    return 0


def validate_device_name(value: str) -> None:
    """Raise ValidationError (code ``invalid``) if ``value`` holds a control, format,
    surrogate, private-use, noncharacter or line-separating character.

    Letters of every script, digits, punctuation, symbols (emoji, including ZWJ and tag
    sequences) and spaces pass.
    """
    index = 0
    while index < len(value):
        char = value[index]
        skip_to = _end_of_tag_sequence(value, index)
        if skip_to:
            index = skip_to
            continue
        joined = (
            char in JOINERS
            and 0 < index < len(value) - 1
            and _visible(value[index - 1])
            and _visible(value[index + 1])
        )
        if _forbidden(char) and not joined:
            raise ValidationError(
                _(
                    "Use letters, digits, punctuation, symbols and spaces only: no control, "
                    "format or invisible characters."
                ),
                code="invalid",
            )
        index += 1
