"""Consecutive wrong codes of a Cognito user, across enrollments: the abuse limit."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import models
from django.utils.translation import gettext_lazy as _


class FailureCounterQuerySet(models.QuerySet["FailureCounter"]):
    def record(self, cognito_username: str) -> tuple[int, datetime | None] | None:
        """Return a user's consecutive wrong codes and back-off end, or None without a record."""
        rows = self.filter(pk=cognito_username).values_list("consecutive_failures", "blocked_until")
        return next(iter(rows[:1]), None)  # unordered: the model has no default ordering

    def count_failure(
        self, cognito_username: str, *, budget: int, backoff_base: timedelta, at: datetime
    ) -> None:
        """Count one more wrong code; past ``budget`` the user backs off, twice as long each
        time (at most a day). Runs inside the caller's transaction, the row locked."""
        counter, _ = self.select_for_update().get_or_create(cognito_username=cognito_username)
        counter.consecutive_failures += 1
        over_budget = counter.consecutive_failures - budget
        if over_budget > 0:
            backoff = backoff_base * (2 ** min(over_budget - 1, 16))
            counter.blocked_until = at + min(backoff, timedelta(hours=24))
        counter.save(update_fields=["consecutive_failures", "blocked_until", "updated_at"])

    def forget(self, cognito_username: str) -> None:
        """Forget a user's consecutive wrong codes."""
        self.filter(pk=cognito_username).delete()


class FailureCounter(models.Model):
    """Consecutive wrong codes of one Cognito user, across enrollments (abuse limit)."""

    cognito_username = models.CharField(max_length=128, primary_key=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    blocked_until = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = FailureCounterQuerySet.as_manager()

    class Meta:
        verbose_name = _("MFA failure counter")

    def __str__(self) -> str:
        return f"{self.cognito_username}: {self.consecutive_failures}"
