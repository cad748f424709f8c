"""The app's models: enrollments, their audit trail, Cognito identities, failure counters.

The TOTP secret is never stored here. Every row change the flows make is a method of a
model's QuerySet.
"""

# isort: off
# The models' order before they were split into modules: content types and permissions are
# created in the order the models register.
from .enrollment import (
    TERMINAL_STATUSES,
    Enrollment,
    EnrollmentFlow,
    EnrollmentQuerySet,
    EnrollmentStatus,
    lease_free,
    lock_user_row,
)
from .audit import AuditEvent, AuditEventQuerySet
from .identity import CognitoIdentity
from .failures import FailureCounter, FailureCounterQuerySet

# isort: on

__all__ = [
    "TERMINAL_STATUSES",
    "AuditEvent",
    "AuditEventQuerySet",
    "CognitoIdentity",
    "Enrollment",
    "EnrollmentFlow",
    "EnrollmentQuerySet",
    "EnrollmentStatus",
    "FailureCounter",
    "FailureCounterQuerySet",
    "lease_free",
    "lock_user_row",
]
