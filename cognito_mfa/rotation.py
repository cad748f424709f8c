"""Re-encryption of stored credentials under the current key (``rotate_encryption_keys``).

Each row is rewritten with a compare-and-set on its old ciphertext, so the command can run
while the site serves, twice at once, or again after an interruption: a row that a verify
finished, or another run rotated, in the meantime is left as it is.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from . import crypto
from .models import Enrollment, EnrollmentStatus


@dataclass
class RotationReport:
    """What one run did, row by row."""

    rotated: int = 0  # re-encrypted under the first key (or would be, on a dry run)
    current: int = 0  # already under the first key: nothing to do
    changed: int = 0  # finished or rotated by someone else between read and write
    undecryptable: int = 0  # no configured key opens it: its key was removed too early


def _batches(ids: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def _with_credential() -> Any:
    return Enrollment.objects.filter(
        status=EnrollmentStatus.PENDING, encrypted_credential__isnull=False
    )


def rotate_stored_credentials(*, batch_size: int = 500, dry_run: bool = False) -> RotationReport:
    """Re-encrypt every stored credential under the first ``COGNITO_MFA_ENCRYPTION_KEYS`` key.

    Raise ValueError if the keys setting is empty or holds an invalid key.
    """
    crypto.build_fernet()  # fail before touching anything if the keys are unusable
    report = RotationReport()
    ids = list(_with_credential().order_by("created_at").values_list("pk", flat=True))
    for batch in _batches(ids, max(1, batch_size)):
        rows = _with_credential().filter(pk__in=batch).values_list("pk", "encrypted_credential")
        for pk, stored in rows:
            old = bytes(stored)
            if crypto.is_current(old):
                report.current += 1
                continue
            try:
                new = crypto.rotate(old)
            except crypto.CredentialUndecryptable:
                report.undecryptable += 1
                continue
            if dry_run:
                report.rotated += 1
                continue
            # Compare-and-set on the old ciphertext: never resurrect a credential that a
            # finished enrollment dropped, never overwrite another run's fresh ciphertext.
            written = (
                _with_credential()
                .filter(pk=pk, encrypted_credential=old)
                .update(encrypted_credential=new)
            )
            if written:
                report.rotated += 1
            else:
                report.changed += 1
    return report
