"""Migration operations that keep a busy site writing while its tables change.

Every index this app adds from 0006 on goes through :class:`AddIndexConcurrentlyOnPostgreSQL`:
a plain ``CREATE INDEX`` holds a lock that makes every insert and update of the table wait
until the index is built (seconds to minutes on a large table), while PostgreSQL's
``CREATE INDEX CONCURRENTLY`` lets them through. Other databases build the index the plain way.
A migration using it must say ``atomic = False``: PostgreSQL refuses a concurrent build inside
a transaction.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations


def _on_postgresql(schema_editor: Any) -> bool:
    return bool(schema_editor.connection.vendor == "postgresql")


class AddIndexConcurrentlyOnPostgreSQL(migrations.AddIndex):
    """``AddIndexConcurrently`` on PostgreSQL, ``AddIndex`` on every other database."""

    def database_forwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        if _on_postgresql(schema_editor):
            # Imported here: django.contrib.postgres needs psycopg, which a site on another
            # database may not have installed.
            from django.contrib.postgres.operations import AddIndexConcurrently

            # A concurrent build that was interrupted leaves an invalid index behind, and a
            # migration that is not atomic is not recorded until its last operation: so that
            # running ``migrate`` again completes it, an index left by an earlier attempt is
            # dropped (without blocking writes either) and built again.
            name = schema_editor.connection.ops.quote_name(self.index.name)
            schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
            concurrent = AddIndexConcurrently(self.model_name, self.index)
            concurrent.database_forwards(app_label, schema_editor, from_state, to_state)
        else:
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        if _on_postgresql(schema_editor):
            from django.contrib.postgres.operations import AddIndexConcurrently

            concurrent = AddIndexConcurrently(self.model_name, self.index)
            concurrent.database_backwards(app_label, schema_editor, from_state, to_state)
        else:
            super().database_backwards(app_label, schema_editor, from_state, to_state)

    def describe(self) -> str:
        return f"{super().describe()} (concurrently on PostgreSQL)"
