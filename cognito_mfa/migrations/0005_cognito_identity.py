"""Cognito users are bound to site users by pool and ``sub``. No data to fix: existing users
are bound on their next request, by the adapter's rule (adopt a same-named account only if it
is no one else's, is active and is neither staff nor superuser)."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('cognito_mfa', '0004_unproven_challenge_claims_name_nobody'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='CognitoIdentity',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('pool_id', models.CharField(max_length=64, verbose_name='user pool id')),
                ('sub', models.CharField(max_length=128, verbose_name='Cognito sub')),
                ('cognito_username', models.CharField(db_index=True, max_length=128, verbose_name='Cognito username')),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('user', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='cognito_mfa_identities', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'verbose_name': 'Cognito identity',
                'verbose_name_plural': 'Cognito identities',
                'constraints': [models.UniqueConstraint(fields=('pool_id', 'sub'), name='cognito_mfa_one_user_per_sub'), models.UniqueConstraint(fields=('pool_id', 'user'), name='cognito_mfa_one_sub_per_user')],
            },
        ),
    ]
