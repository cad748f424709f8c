"""``manage.py cleanup_enrollments``: the periodic housekeeping (run it from cron).

Expires pending enrollments whose time is up (wiping their stored credential, one
``enrollment_expired`` signal each), completes ``SetUserMFAPreference`` calls still owed after
a Cognito outage, and deletes finished enrollments and audit events older than
``COGNITO_MFA_RETENTION``. Every change is compare-and-set or idempotent, so several hosts may
run it at the same time.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from cognito_mfa import flows
from cognito_mfa.checks import check_number
from cognito_mfa.conf import app_settings


class Command(BaseCommand):
    help = (
        "Expire stale pending MFA enrollments, complete owed MFA preferences and delete "
        "finished enrollments and audit events older than COGNITO_MFA_RETENTION."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        # Before any change: a bad value would otherwise stop the run half-way with a
        # traceback, and a negative one would delete rows still inside the retention period.
        # ``manage.py`` runs the system checks first, but ``call_command`` and --skip-checks
        # do not.
        problems = check_number("RETENTION")
        if problems:
            raise CommandError(f"{problems[0].msg} {problems[0].hint}")
        report = flows.cleanup(flows.Context.build("command"))
        days = app_settings.RETENTION.total_seconds() / 86400
        if options["verbosity"] >= 1:  # 0: silent, so cron mails only a failure
            self.stdout.write(f"Expired {report.expired} pending enrollment(s).")
            self.stdout.write(
                f"Completed {report.preferences_completed} owed MFA preference(s); "
                f"{report.preferences_failed} failed."
            )
            self.stdout.write(
                f"Deleted {report.deleted_enrollments} finished enrollment(s) and "
                f"{report.deleted_events} audit event(s) older than {days:g} day(s)."
            )
        if report.preferences_failed:
            # Non-zero so cron's mail or the scheduler's alert shows the outage; the next run
            # retries.
            raise CommandError(
                f"{report.preferences_failed} owed MFA preference(s) could not be completed; "
                "Cognito was unavailable or refused. The next run retries.",
                returncode=2,
            )
