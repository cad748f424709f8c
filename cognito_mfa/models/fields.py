"""Field definitions the models share."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import models

if TYPE_CHECKING:  # the stubs' name for a str or a lazy translation
    from django_stubs_ext import StrOrPromise


def optional_user(verbose_name: StrOrPromise) -> models.ForeignKey[Any, Any]:
    """A link to a site user that outlives the account (NULL once it is deleted) and adds no
    reverse accessor to the user model."""
    return models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=verbose_name,
    )
