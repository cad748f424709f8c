"""``manage.py rotate_encryption_keys``: re-encrypt stored credentials under the current key."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...rotation import rotate_stored_credentials


class Command(BaseCommand):
    help = (
        "Re-encrypt the credentials of pending enrollments under the first key of "
        "COGNITO_MFA_ENCRYPTION_KEYS, so older keys can then be removed. Safe to run while "
        "the site serves, more than once, and several times at once."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--batch-size",
            type=int,
            default=500,
            help="Rows read per query (default 500).",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Count what would be re-encrypted; write nothing.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["batch_size"] < 1:
            # Refused, not read as 1: a wrong value is reported, never quietly run row by row.
            raise CommandError("--batch-size must be a whole number of 1 or more.")
        try:
            report = rotate_stored_credentials(
                batch_size=options["batch_size"], dry_run=options["dry_run"]
            )
        except (ValueError, TypeError) as error:
            raise CommandError(f"COGNITO_MFA_ENCRYPTION_KEYS is not usable: {error}") from None
        verb = "would be re-encrypted" if options["dry_run"] else "re-encrypted"
        if options["verbosity"] >= 1:  # 0: silent, so a scheduled run reports only a failure
            self.stdout.write(f"{report.rotated} {verb} under the current key")
            self.stdout.write(f"{report.current} already under the current key")
            self.stdout.write(f"{report.changed} finished or rotated elsewhere meanwhile (skipped)")
            self.stdout.write(f"{report.undecryptable} not decryptable with any configured key")
        if report.undecryptable:
            raise CommandError(
                f"{report.undecryptable} stored credential(s) cannot be decrypted: put back the "
                "key they were encrypted with (after the current one) and run this again, or "
                "expire those enrollments."
            )
