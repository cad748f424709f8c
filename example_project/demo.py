"""Run the example site on an embedded Cognito: ``python -m example_project.demo``.

Without ``COGNITO_MFA_USER_POOL_ID`` in the environment this starts moto's Cognito as an HTTP
server on 127.0.0.1 inside this process, seeds a user pool (TOTP on, MFA required), an app
client and two users, points the ``COGNITO_MFA_*`` settings at it, migrates the SQLite
database, creates a Django superuser and serves the site until Ctrl-C.

With ``COGNITO_MFA_REGION``, ``COGNITO_MFA_USER_POOL_ID`` and ``COGNITO_MFA_APP_CLIENT_IDS``
set, moto and the seeding are skipped and the site talks to that real pool.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import signal
import sys
from dataclasses import dataclass
from types import FrameType
from typing import Any

DEFAULT_PORT = 8000
REGION = "us-east-1"
ADMIN_USERNAME = "admin"
# Real Cognito's default policy, so passwords that work here work on a real pool too.
PASSWORD_POLICY = {
    "MinimumLength": 8,
    "RequireUppercase": True,
    "RequireLowercase": True,
    "RequireNumbers": True,
    "RequireSymbols": True,
}
REAL_POOL_VARIABLES = (
    "COGNITO_MFA_REGION",
    "COGNITO_MFA_USER_POOL_ID",
    "COGNITO_MFA_APP_CLIENT_IDS",
)


@dataclass(frozen=True)
class DemoUser:
    username: str
    email: str
    password: str
    temporary: bool
    note: str


# A user who signs in straight away and sets up an authenticator from the account page, and
# one whose temporary password leads through NEW_PASSWORD_REQUIRED to MFA_SETUP.
READY_USER = DemoUser(
    "alice",
    "alice@example.com",
    "Alice-demo-2024",
    temporary=False,
    note="signs in, then sets up an authenticator from the account page",
)
NEW_USER = DemoUser(
    "bob",
    "bob@example.com",
    "Bob-temporary-1",
    temporary=True,
    note="temporary password: chooses a new one, then meets MFA_SETUP",
)
DEMO_USERS = (READY_USER, NEW_USER)


@dataclass(frozen=True)
class SeededPool:
    pool_id: str
    client_id: str


def seed_pool(client: Any) -> SeededPool:
    """Create the demo pool, its app client and the demo users through ``client``.

    MFA is required ("ON") because that is the only pool setting under which Cognito (and
    moto) answer a first sign-in with ``MFA_SETUP``. moto still lets a user with a permanent
    password and no token yet sign in without a challenge, so the ready user reaches the
    account page and enrolls there; a real required-MFA pool would send that user through
    ``MFA_SETUP`` too, which the page handles the same way.
    """
    pool_id = client.create_user_pool(
        PoolName="cognito-mfa-demo",
        Policies={"PasswordPolicy": PASSWORD_POLICY},
    )["UserPool"]["Id"]
    client.set_user_pool_mfa_config(
        UserPoolId=pool_id,
        SoftwareTokenMfaConfiguration={"Enabled": True},
        MfaConfiguration="ON",
    )
    app = client.create_user_pool_client(
        UserPoolId=pool_id,
        ClientName="demo-spa",
        GenerateSecret=False,
        ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
    )["UserPoolClient"]
    for user in DEMO_USERS:
        client.admin_create_user(
            UserPoolId=pool_id,
            Username=user.username,
            TemporaryPassword=user.password,
            UserAttributes=[
                {"Name": "email", "Value": user.email},
                {"Name": "email_verified", "Value": "true"},
            ],
            MessageAction="SUPPRESS",
        )
        if not user.temporary:
            client.admin_set_user_password(
                UserPoolId=pool_id, Username=user.username, Password=user.password, Permanent=True
            )
    return SeededPool(pool_id=pool_id, client_id=app["ClientId"])


def pool_settings(endpoint_url: str, pool: SeededPool) -> dict[str, str]:
    """Return the ``COGNITO_MFA_*`` environment that points the site at a moto pool."""
    return {
        "COGNITO_MFA_REGION": REGION,
        "COGNITO_MFA_USER_POOL_ID": pool.pool_id,
        "COGNITO_MFA_APP_CLIENT_IDS": pool.client_id,
        "COGNITO_MFA_ENDPOINT_URL": endpoint_url,
        "COGNITO_MFA_JWKS_URL": f"{endpoint_url}/{pool.pool_id}/.well-known/jwks.json",
    }


class EmbeddedCognito:
    """moto's Cognito as an HTTP server on loopback, seeded with the demo pool."""

    def __init__(self) -> None:
        self.server: Any = None
        self.url = ""
        self.pool: SeededPool | None = None

    def start(self) -> None:
        # moto checks TOTP codes only with this set; the credentials are moto's, never AWS's.
        os.environ["MOTO_COGNITO_IDP_USER_POOL_ENABLE_TOTP"] = "true"
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
            os.environ.pop(name, None)
        os.environ["AWS_ACCESS_KEY_ID"] = "demo"
        os.environ["AWS_SECRET_ACCESS_KEY"] = "demo"
        os.environ["AWS_DEFAULT_REGION"] = REGION

        import boto3
        from moto.server import ThreadedMotoServer

        # moto's werkzeug server would log every Cognito call; the site's own log is enough.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        client = boto3.client("cognito-idp", region_name=REGION, endpoint_url=self.url)
        self.pool = seed_pool(client)
        os.environ.update(pool_settings(self.url, self.pool))

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


def real_pool_configured() -> bool:
    """Tell whether the environment names a real user pool (then moto is not started)."""
    return bool(os.environ.get("COGNITO_MFA_USER_POOL_ID"))


def _setup_django() -> None:
    # Forced, not setdefault: a test runner's DJANGO_SETTINGS_MODULE must not leak in.
    os.environ["DJANGO_SETTINGS_MODULE"] = "example_project.settings"
    import django

    django.setup()


def _check_or_exit() -> None:
    from django.core import checks

    errors = [issue for issue in checks.run_checks() if issue.is_serious()]
    if errors:
        for error in errors:
            print(f"  {error}", file=sys.stderr)
        raise SystemExit("The site's settings have errors (above); nothing was started.")


def _prepare_database(admin_password: str) -> None:
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    user_model = get_user_model()
    admin, _ = user_model._default_manager.get_or_create(
        **{user_model.USERNAME_FIELD: ADMIN_USERNAME}
    )
    admin.is_staff = True
    admin.is_superuser = True
    admin.set_password(admin_password)
    admin.save()


def _build_server(port: int) -> Any:
    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler

    httpd = ThreadedWSGIServer(("127.0.0.1", port), WSGIRequestHandler, ipv6=False)
    # Static files (the page's JS and CSS, the admin's) are served whatever DEBUG says.
    httpd.set_app(StaticFilesHandler(WSGIHandler()))
    return httpd


def _banner(url: str, cognito: EmbeddedCognito | None, admin_password: str) -> str:
    from django.conf import settings

    database = settings.DATABASES["default"]["NAME"]
    lines = ["", "cognito_mfa demo", ""]
    if cognito is not None and cognito.pool is not None:
        lines.append(f"  Cognito:   embedded (moto) at {cognito.url}, pool {cognito.pool.pool_id}")
        lines.append("             TOTP codes are checked for real: any authenticator app works")
    else:
        lines.append(
            f"  Cognito:   pool {settings.COGNITO_MFA_USER_POOL_ID} "
            f"in {settings.COGNITO_MFA_REGION}"
        )
    lines += [f"  Database:  {database}", "", f"  Open {url}", ""]
    if cognito is not None:
        lines.append("  Sign in as (Cognito users):")
        width = max(len(user.username) + len(user.password) for user in DEMO_USERS) + 3
        for user in DEMO_USERS:
            login = f"{user.username} / {user.password}"
            lines.append(f"    {login:<{width}}  {user.note}")
        lines.append("")
    lines += [
        f"  Django admin: {url}admin/  as {ADMIN_USERNAME} / {admin_password}",
        "",
        "  Press Ctrl-C to stop.",
        "",
    ]
    return "\n".join(lines)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Start Cognito (unless a real pool is configured), prepare the site and serve it."""
    parser = argparse.ArgumentParser(prog="python -m example_project.demo", description=__doc__)
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("DEMO_PORT", DEFAULT_PORT)),
        help="port on 127.0.0.1 (default: $DEMO_PORT or 8000)",
    )
    args = parser.parse_args(argv)

    cognito: EmbeddedCognito | None = None
    if real_pool_configured():
        missing = [name for name in REAL_POOL_VARIABLES if not os.environ.get(name)]
        if missing:
            print(f"A real pool needs {', '.join(missing)} as well.", file=sys.stderr)
            return 2
    else:
        cognito = EmbeddedCognito()
    # Complete MFA_SETUP server-side: the user's fresh access token then turns TOTP on, so no
    # IAM-authorised call (and no AWS credentials) is needed for it.
    os.environ.setdefault("COGNITO_MFA_CHALLENGE_COMPLETE_AUTH", "1")
    # SIGTERM (systemd, docker stop, a test) shuts down as cleanly as Ctrl-C.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    httpd = None
    try:
        if cognito is not None:
            cognito.start()
        _setup_django()
        _check_or_exit()
        admin_password = os.environ.get("DEMO_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        _prepare_database(admin_password)
        try:
            httpd = _build_server(args.port)
        except OSError as error:
            print(
                f"Cannot listen on 127.0.0.1:{args.port} ({error.strerror}); "
                "pick another port with --port.",
                file=sys.stderr,
            )
            return 1
        port = httpd.server_address[1]
        print(_banner(f"http://127.0.0.1:{port}/", cognito, admin_password), flush=True)
        httpd.serve_forever()
    except KeyboardInterrupt:
        print("\nStopping.", flush=True)
    finally:
        if httpd is not None:
            httpd.server_close()
        if cognito is not None:
            cognito.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
