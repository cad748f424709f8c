from django.apps import AppConfig
from django.core.signals import setting_changed
from django.utils.translation import gettext_lazy as _


class CognitoMFAConfig(AppConfig):
    name = "cognito_mfa"
    verbose_name = _("Cognito MFA")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported once the registry is ready: both reach the models, which cannot be imported
        # while Django is still loading this module.
        from . import checks  # noqa: F401  (registers the system checks)
        from .receivers import reset_on_setting_change

        setting_changed.connect(reset_on_setting_change, dispatch_uid="cognito_mfa_settings")
