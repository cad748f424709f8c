"""Indexes for the admin's lists (newest first, on their own and per filter) and the
cleanup's walks over old rows and owed preferences. PostgreSQL builds them concurrently, so
a live site keeps writing enrollments and audit events while they build; hence
``atomic = False``.
"""

from django.db import migrations, models

from cognito_mfa.migration_operations import AddIndexConcurrentlyOnPostgreSQL


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("cognito_mfa", "0005_cognito_identity"),
    ]

    operations = [
        AddIndexConcurrentlyOnPostgreSQL(
            model_name="enrollment",
            index=models.Index(fields=["created_at", "id"], name="cognito_mfa_enr_created"),
        ),
        AddIndexConcurrentlyOnPostgreSQL(
            model_name="enrollment",
            index=models.Index(
                fields=["status", "created_at", "id"], name="cognito_mfa_enr_status_new"
            ),
        ),
        AddIndexConcurrentlyOnPostgreSQL(
            model_name="enrollment",
            index=models.Index(
                fields=["flow", "created_at", "id"], name="cognito_mfa_enr_flow_new"
            ),
        ),
        AddIndexConcurrentlyOnPostgreSQL(
            model_name="enrollment",
            index=models.Index(
                fields=["created_at"],
                condition=models.Q(preference_pending=True),
                name="cognito_mfa_enr_owed",
            ),
        ),
        AddIndexConcurrentlyOnPostgreSQL(
            model_name="auditevent",
            index=models.Index(
                fields=["kind", "created_at", "id"], name="cognito_mfa_evt_kind_new"
            ),
        ),
        AddIndexConcurrentlyOnPostgreSQL(
            model_name="auditevent",
            index=models.Index(
                fields=["source", "created_at", "id"], name="cognito_mfa_evt_source_new"
            ),
        ),
        AddIndexConcurrentlyOnPostgreSQL(
            model_name="auditevent",
            index=models.Index(
                fields=["outcome", "created_at", "id"], name="cognito_mfa_evt_outcome_new"
            ),
        ),
    ]
