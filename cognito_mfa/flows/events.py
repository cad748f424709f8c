"""What happened, told twice in one call: an audit row in the caller's transaction and the
matching signal after it commits.

:func:`record` does both; :func:`audit_row` builds a row for a batch to save in one INSERT,
and :func:`announce` sends a signal whose event another row already tells.
"""

from __future__ import annotations

import logging
from typing import Any, TypedDict, Unpack

from django.db import transaction
from django.dispatch import Signal

from .. import signals
from ..models import AuditEvent, Enrollment
from .context import Context

logger = logging.getLogger("cognito_mfa.flows")

# What each signal carries beside ``user``, ``request`` and ``source`` (signals.py documents
# every signal's kwargs): the enrollment, unless it is about the user's MFA as a whole; the
# actor, where an admin may act for the user.
_WITHOUT_ENROLLMENT = frozenset({signals.mfa_preference_changed})
_WITH_ACTOR = frozenset(
    {signals.software_token_verified, signals.verification_failed, signals.mfa_preference_changed}
)


class AuditFields(TypedDict, total=False):
    """What an audit row tells beside its kind, source, actor and address."""

    enrollment: Enrollment | None
    user: Any  # default: the enrollment's user
    cognito_username: str  # default: the enrollment's Cognito username
    outcome: str  # default: "ok"
    detail: dict[str, Any] | None


def audit_row(kind: str, context: Context, **fields: Unpack[AuditFields]) -> AuditEvent:
    """Return the audit row of one event, not yet saved (a batch saves its rows in one INSERT)."""
    return AuditEvent(**_columns(kind, context, fields))


def _columns(kind: str, context: Context, fields: AuditFields) -> dict[str, Any]:
    enrollment = fields.get("enrollment")
    user = fields.get("user")
    cognito_username = fields.get("cognito_username", "")
    if enrollment is not None:
        user = user if user is not None else enrollment.user
        cognito_username = cognito_username or enrollment.cognito_username
    return {
        "enrollment": enrollment,
        "user": user,
        "cognito_username": cognito_username,
        "actor": context.actor_for(user),
        "kind": kind,
        "source": context.source,
        "outcome": fields.get("outcome", "ok"),
        "ip_address": context.ip_address,
        "detail": fields.get("detail") or {},
    }


def record(
    kind: str,
    context: Context,
    *,
    signal: Signal | None = None,
    signal_kwargs: dict[str, Any] | None = None,
    **fields: Unpack[AuditFields],
) -> None:
    """Save the audit row of one event and, given ``signal``, send it after commit with the
    kwargs it documents (``signal_kwargs``: those of its own, e.g. ``attempts_remaining``)."""
    row = AuditEvent.objects.create(**_columns(kind, context, fields))
    if signal is not None:
        # The row's user and enrollment are the objects it was built with: no query.
        announce(signal, context, user=row.user, enrollment=row.enrollment, **signal_kwargs or {})


def announce(
    signal: Signal,
    context: Context,
    *,
    user: Any,
    enrollment: Enrollment | None = None,
    **signal_kwargs: Any,
) -> None:
    """Send ``signal`` once the caller's transaction commits (at once outside of one)."""
    kwargs: dict[str, Any] = {"user": user, "request": context.request, "source": context.source}
    if signal not in _WITHOUT_ENROLLMENT:
        kwargs["enrollment"] = enrollment
    if signal in _WITH_ACTOR:
        kwargs["actor"] = context.actor_for(user)
    kwargs.update(signal_kwargs)

    def send() -> None:
        for receiver, response in signal.send_robust(sender=Enrollment, **kwargs):
            if isinstance(response, Exception):
                logger.error(
                    "cognito_mfa signal receiver %r raised %s",
                    receiver,
                    type(response).__name__,
                )

    transaction.on_commit(send)
