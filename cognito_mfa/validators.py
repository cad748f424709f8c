"""Validators shared by the REST API's serializers and the admin's forms."""

from __future__ import annotations

import unicodedata

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

# Characters a device name may not hold: controls (Cc, the C1 ones such as NEL and CSI too),
# format characters (Cf: bidi overrides, zero-width spaces, a BOM, tag characters), lone
# surrogates (Cs), private use (Co), unassigned code points (Cn) and the line and paragraph
# separators (Zl, Zp). The name is shown in Cognito, in authenticator lists and in the admin:
# such characters reorder, hide or break what a reader sees.
FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})

# Zero-width (non-)joiners are format characters that writing needs: ZWNJ in Persian words,
# ZWJ in emoji sequences. Accepted between two visible characters, never at an edge or in a run.
JOINERS = frozenset({"\u200c", "\u200d"})


def _visible(char: str) -> bool:
    return not char.isspace() and unicodedata.category(char) not in FORBIDDEN_CATEGORIES


def validate_device_name(value: str) -> None:
    """Raise ValidationError (code ``invalid``) if ``value`` holds a control, format,
    surrogate, private-use, unassigned or line-separating character.

    Letters of every script, digits, punctuation, symbols (emoji) and spaces pass.
    """
    for index, char in enumerate(value):
        if unicodedata.category(char) not in FORBIDDEN_CATEGORIES:
            continue
        if (
            char in JOINERS
            and 0 < index < len(value) - 1
            and _visible(value[index - 1])
            and _visible(value[index + 1])
        ):
            continue
        raise ValidationError(
            _(
                "Use letters, digits, punctuation, symbols and spaces only: no control, "
                "format or invisible characters."
            ),
            code="invalid",
        )
