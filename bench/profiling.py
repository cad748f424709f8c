"""Profile the app's start and verify requests in-process with pyinstrument.

``python -m bench.profiling [iterations]`` (``COGNITO_MFA_BENCH_DATABASE`` picks the database)
prints one call tree per endpoint; ``bench/README.md`` records what dominated and what was
changed because of it.
"""

from __future__ import annotations

import sys

from pyinstrument import Profiler

from bench.inprocess import Driver, _migrate, _setup
from bench.stub import CognitoStub
from bench.support import SigningKey


def main() -> None:
    iterations = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    key = SigningKey()
    stub = CognitoStub().start()
    _setup(stub.url, key)
    _migrate()
    driver = Driver(key.access_token("bench-profile"))
    for _ in range(20):
        driver.app_verify(driver.app_start())
    start, verify = Profiler(interval=0.0002), Profiler(interval=0.0002)
    for _ in range(iterations):
        start.start()
        enrollment_id = driver.app_start()
        start.stop()
        verify.start()
        driver.app_verify(enrollment_id)
        verify.stop()
    stub.stop()
    for name, profiler in (("POST enrollments/", start), ("POST enrollments/{id}/verify/", verify)):
        print(f"==== {name} x{iterations}")
        print(profiler.output_text(unicode=False, color=False, show_all=False))


if __name__ == "__main__":
    main()
