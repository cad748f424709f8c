"""Helpers the tests share, one module per subject; fixtures stay in ``tests/conftest.py``.

- ``cognito``: moto's user pool, the test adapter, TOTP codes, the one Cognito call counter
- ``enrollments``: the one way a test starts (and verifies) an enrollment through the API
- ``challenge``: the SPA's side of the sign-in ``MFA_SETUP`` challenge, a Stubber-backed client
- ``sentinels``: searches of the database, the logs and the signals for what must not leak
- ``signals``: every signal's name and the log the ``signal_log`` fixture fills
- ``users``: Cognito users that already hold a TOTP, sign-ins answering its challenge
- ``tokens``: access tokens signed with keys of our own
- ``admin``: staff users with chosen permissions, submitting admin actions
- ``commands``: the management commands run as an operator runs them
- ``faults``: faults injected at botocore's ``before-send``
- ``servers``: gunicorn, a counting proxy before moto, throw-away databases
- ``services``: real services a test needs (skipped locally, required under CI), the browser
- ``threads``: work released in several threads at once, as on several hosts
- ``otpauth_readers``: independent readers of otpauth URIs
"""
