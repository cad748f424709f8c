"""Amazon Cognito TOTP MFA enrollment for Django."""

__version__ = "0.1.0"
