"""Django admin: enrollments and their audit trail, the help desk's actions and verify page.

Rows change only through the actions and the verify page, and each calls a flow (never Cognito
directly), so the attempt cap, the lock, the audit trail and the signals are the same as for
the REST API. Neither the stored credential nor the challenge-token hash is ever put on a page.

- :mod:`.enrollments`: the enrollment admin (its list, change page and permissions)
- :mod:`.actions`: its actions (verify, cancel, reset TOTP, refresh the MFA state)
- :mod:`.verify`: the "Verify device with code" page at ``<pk>/verify/``
- :mod:`.audit`: the audit trail's admin and the inline on an enrollment
- :mod:`.changelists`: the changelist pieces that keep a page fast at millions of rows
- :mod:`.common`: what the actions and pages share (names, error texts, the page frame)
"""

from django.contrib import admin

from ..models import AuditEvent, Enrollment
from .audit import AuditEventAdmin, OutcomeFilter, SourceFilter
from .enrollments import EnrollmentAdmin

__all__ = ["AuditEventAdmin", "EnrollmentAdmin", "OutcomeFilter", "SourceFilter"]

admin.site.register(Enrollment, EnrollmentAdmin)
admin.site.register(AuditEvent, AuditEventAdmin)
