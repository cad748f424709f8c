# Labels only (verbose_name): the admin shows them translated; no schema change.

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('cognito_mfa', '0006_admin_list_indexes'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name='auditevent',
            name='actor',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL, verbose_name='actor'),
        ),
        migrations.AlterField(
            model_name='auditevent',
            name='cognito_username',
            field=models.CharField(blank=True, db_index=True, max_length=128, verbose_name='Cognito username'),
        ),
        migrations.AlterField(
            model_name='auditevent',
            name='created_at',
            field=models.DateTimeField(db_index=True, default=django.utils.timezone.now, verbose_name='created at'),
        ),
        migrations.AlterField(
            model_name='auditevent',
            name='detail',
            field=models.JSONField(blank=True, default=dict, verbose_name='detail'),
        ),
        migrations.AlterField(
            model_name='auditevent',
            name='enrollment',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='events', to='cognito_mfa.enrollment', verbose_name='enrollment'),
        ),
        migrations.AlterField(
            model_name='auditevent',
            name='ip_address',
            field=models.GenericIPAddressField(blank=True, null=True, verbose_name='IP address'),
        ),
        migrations.AlterField(
            model_name='auditevent',
            name='kind',
            field=models.CharField(choices=[('started', 'enrollment started'), ('verified', 'device verified'), ('verification_failed', 'verification failed'), ('locked', 'enrollment locked'), ('expired', 'enrollment expired'), ('cancelled', 'enrollment cancelled'), ('preference_changed', 'MFA preference changed'), ('mfa_reset', 'TOTP reset'), ('state_refreshed', 'MFA state refreshed'), ('challenge_completed', 'sign-in challenge completed')], max_length=32, verbose_name='kind'),
        ),
        migrations.AlterField(
            model_name='auditevent',
            name='outcome',
            field=models.CharField(default='ok', max_length=32, verbose_name='outcome'),
        ),
        migrations.AlterField(
            model_name='auditevent',
            name='source',
            field=models.CharField(max_length=16, verbose_name='source'),
        ),
        migrations.AlterField(
            model_name='auditevent',
            name='user',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL, verbose_name='user'),
        ),
        migrations.AlterField(
            model_name='cognitoidentity',
            name='created_at',
            field=models.DateTimeField(default=django.utils.timezone.now, verbose_name='created at'),
        ),
        migrations.AlterField(
            model_name='cognitoidentity',
            name='user',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='cognito_mfa_identities', to=settings.AUTH_USER_MODEL, verbose_name='user'),
        ),
        migrations.AlterField(
            model_name='enrollment',
            name='created_at',
            field=models.DateTimeField(default=django.utils.timezone.now, verbose_name='created at'),
        ),
        migrations.AlterField(
            model_name='enrollment',
            name='credential_expires_at',
            field=models.DateTimeField(blank=True, null=True, verbose_name='credential expires at'),
        ),
        migrations.AlterField(
            model_name='enrollment',
            name='expires_at',
            field=models.DateTimeField(verbose_name='expires at'),
        ),
        migrations.AlterField(
            model_name='enrollment',
            name='finished_at',
            field=models.DateTimeField(blank=True, null=True, verbose_name='finished at'),
        ),
        migrations.AlterField(
            model_name='enrollment',
            name='flow',
            field=models.CharField(choices=[('access_token', 'access token'), ('challenge', 'sign-in challenge')], max_length=16, verbose_name='flow'),
        ),
        migrations.AlterField(
            model_name='enrollment',
            name='preference_pending',
            field=models.BooleanField(default=False, verbose_name='preference pending'),
        ),
        migrations.AlterField(
            model_name='enrollment',
            name='status',
            field=models.CharField(choices=[('pending', 'pending'), ('verified', 'verified'), ('locked', 'locked'), ('expired', 'expired'), ('cancelled', 'cancelled')], default='pending', max_length=16, verbose_name='status'),
        ),
        migrations.AlterField(
            model_name='enrollment',
            name='user',
            field=models.ForeignKey(blank=True, help_text="Empty for a sign-in challenge until Cognito's tokens prove its username, and when that Cognito user has no site account.", null=True, on_delete=django.db.models.deletion.CASCADE, related_name='cognito_mfa_enrollments', to=settings.AUTH_USER_MODEL, verbose_name='user'),
        ),
        migrations.AlterField(
            model_name='enrollment',
            name='verified_at',
            field=models.DateTimeField(blank=True, null=True, verbose_name='verified at'),
        ),
        migrations.AlterField(
            model_name='enrollment',
            name='verified_by',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL, verbose_name='verified by'),
        ),
    ]
