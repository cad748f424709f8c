"""Which site user a Cognito user is."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class CognitoIdentity(models.Model):
    """Which site user a Cognito user is: the pool and Cognito's ``sub``, never the username.

    A Cognito username can be re-created for another person and can equal a local account's
    name; ``sub`` is Cognito's immutable id of one user in one pool. The default adapter binds
    a user here on first sight (see ``DefaultAdapter.get_user_for_token``).
    """

    pool_id = models.CharField(_("user pool id"), max_length=64)
    sub = models.CharField(_("Cognito sub"), max_length=128)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="cognito_mfa_identities",
        verbose_name=_("user"),
    )
    # The username the last token carried: what admin acts send to Cognito's Admin* calls.
    cognito_username = models.CharField(_("Cognito username"), max_length=128, db_index=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("Cognito identity")
        verbose_name_plural = _("Cognito identities")
        constraints = [
            models.UniqueConstraint(fields=["pool_id", "sub"], name="cognito_mfa_one_user_per_sub"),
            # A site user is one Cognito user per pool: a second Cognito user can never be
            # bound to an account that is already someone's.
            models.UniqueConstraint(
                fields=["pool_id", "user"], name="cognito_mfa_one_sub_per_user"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.cognito_username} ({self.pool_id})"
