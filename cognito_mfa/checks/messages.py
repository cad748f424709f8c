"""The words the checks share: a hint naming a setting, a value shown short."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _


def setting_hint(setting: str, example: str) -> str:
    return _("Set COGNITO_MFA_%(setting)s in your settings, e.g. %(example)s.") % {
        "setting": setting,
        "example": example,
    }


def short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
