"""The audit trail in the admin: its own read-only list, and the inline on an enrollment."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from .. import exceptions as exc
from ..models import AuditEvent
from .changelists import FixedChoicesFilter, ScalableChangelistAdmin


class SourceFilter(FixedChoicesFilter):
    field = "source"
    fixed_choices = (
        ("api", _("REST API")),
        ("challenge", _("sign-in challenge")),
        ("admin", _("admin")),
        ("command", _("management command")),
    )


def _error_codes() -> list[str]:
    found: set[str] = set()
    pending: list[type[exc.CognitoMFAError]] = [exc.CognitoMFAError]
    while pending:
        error = pending.pop()
        pending.extend(error.__subclasses__())
        if error is not exc.CognitoMFAError:
            found.add(error.code)
    return sorted(found)


class OutcomeFilter(FixedChoicesFilter):
    field = "outcome"
    # What an audit row's outcome can be: ok, a sign-in challenge handed back to the SPA, or
    # one of the error codes (which are public API, so this list changes with a release only).
    fixed_choices = (
        ("ok", _("ok")),
        ("challenge", _("challenge answered by the SPA")),
        *((code, code) for code in _error_codes()),
    )


SOURCE_LABELS = dict(SourceFilter.fixed_choices)
OUTCOME_LABELS = dict(OutcomeFilter.fixed_choices)


class LabelledColumns:
    """The outcome and the source shown in the admin's language, as their filters list them.
    An error code stays as it is: it is what the API answers and the logs and docs name."""

    @admin.display(description=_("outcome"))
    def outcome_shown(self, event: AuditEvent) -> str:
        return str(OUTCOME_LABELS.get(event.outcome, event.outcome))

    @admin.display(description=_("source"))
    def source_shown(self, event: AuditEvent) -> str:
        return str(SOURCE_LABELS.get(event.source, event.source))


class AuditEventInline(LabelledColumns, admin.TabularInline):
    """The enrollment's audit trail, newest first, read-only."""

    model = AuditEvent
    fields = (
        "created_at",
        "kind",
        "outcome_shown",
        "source_shown",
        "actor",
        "ip_address",
        "detail",
    )
    readonly_fields = fields
    ordering = ("-created_at", "-id")
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[AuditEvent]:
        return super().get_queryset(request).select_related("actor")


class AuditEventAdmin(LabelledColumns, ScalableChangelistAdmin):
    """The audit trail, read-only (the cleanup command applies the retention period)."""

    list_display = (
        "created_at",
        "kind",
        "outcome_shown",
        "source_shown",
        "cognito_username",
        "user",
        "actor",
        "ip_address",
        "enrollment",
    )
    list_filter = ("kind", SourceFilter, OutcomeFilter, "created_at")
    list_select_related = ("user", "actor", "enrollment")
    ordering = ("-created_at", "-id")
    sortable_by = ("created_at",)
    list_deferred = (
        "detail",
        "enrollment__encrypted_credential",
        "enrollment__challenge_token_hash",
    )
    # The page of one event shows its detail too.
    fields = (*list_display, "detail")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
