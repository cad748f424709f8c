"""Benchmarks of cognito_mfa against a local Cognito stub (``make bench``)."""
