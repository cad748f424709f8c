"""Sign-in challenge rows name a site user only once Cognito's tokens prove the claimed
username (0003's help text). Rows written before that rule named the claimed user from the
start: those that never reached ``verified`` were never proven, so they name nobody now (a
stranger's claim must not stay among the named user's enrollments). Verified rows are left
as they are: whether their tokens proved them is not recorded.
"""

from django.db import migrations


def unproven_claims_name_nobody(apps, schema_editor):
    enrollment = apps.get_model("cognito_mfa", "Enrollment")
    enrollment.objects.filter(flow="challenge", user__isnull=False).exclude(
        status="verified"
    ).update(user=None)


class Migration(migrations.Migration):

    dependencies = [
        ("cognito_mfa", "0003_enrollment_user_proven_by_tokens"),
    ]

    operations = [
        migrations.RunPython(unproven_claims_name_nobody, migrations.RunPython.noop),
    ]
