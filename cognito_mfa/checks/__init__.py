"""System checks: a misconfigured site fails at start-up, never with a 500 later.

Importing this package registers them (``apps.ready`` does). By subject:

- :mod:`.settings`: the user pool, the app's clients, the adapter and the seams, the
  issuer; its ``check_settings`` runs every check of the settings;
- :mod:`.numbers`: the number and duration settings;
- :mod:`.rates`: the throttles' rates and cache, the Cognito call budget;
- :mod:`.security`: the encryption keys, the stored credentials, the JWKS URL.
"""

from .numbers import _NUMBERS, check_number, check_numbers
from .rates import (
    check_call_budget,
    check_call_budget_shared,
    check_throttle_cache,
    check_throttle_rates,
)
from .security import (
    CREDENTIAL_SAMPLE_SIZE,
    check_encryption_keys,
    check_jwks_url,
    check_stored_credentials,
)
from .settings import check_settings

__all__ = [
    "CREDENTIAL_SAMPLE_SIZE",
    "_NUMBERS",
    "check_call_budget",
    "check_call_budget_shared",
    "check_encryption_keys",
    "check_jwks_url",
    "check_number",
    "check_numbers",
    "check_settings",
    "check_stored_credentials",
    "check_throttle_cache",
    "check_throttle_rates",
]
