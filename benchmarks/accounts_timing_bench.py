"""Account forms that must not tell a known address from an unknown one by their timing.

Password reset and sign-up answer the same page for a known and an unknown email; the email (a
reset link, a sign-up link, or "you already have an account") is rendered and sent after the
response. This measures, for each form, the response time a client sees for known and unknown
addresses, and, for comparison, the time including the email, which is what a client saw when the
email was sent before answering. Emails go through a backend that waits 100 ms per message, as an
SMTP round trip does; passwords are hashed with Django's default hasher.

A throwaway PostgreSQL database (<name>_accounts) is created and dropped.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/liqsite_i10 \\
        .venv/bin/python benchmarks/accounts_timing_bench.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from support import bench_database_url, database_recreate

ROOT = Path(__file__).resolve().parent.parent
SMTP_SECONDS = 0.1
PASSWORD = "correct horse battery staple"


class SlowSMTP:
    """An email backend that takes as long as an SMTP round trip and keeps nothing."""

    def __init__(self, **kwargs: object) -> None:
        pass

    def send_messages(self, messages: list) -> int:
        time.sleep(SMTP_SECONDS * len(messages))
        return len(messages)


def timed(handler, request) -> tuple[float, float]:
    """(seconds until the response is ready, seconds until its emails were sent too), as a WSGI
    server sees them: it sends the body, then calls the response's close()."""
    started = time.perf_counter()
    response = handler.get_response(request)
    answered = time.perf_counter()
    response.close()
    return answered - started, time.perf_counter() - started


def post(path: str, data: dict, address: str):
    from django.test import RequestFactory

    request = RequestFactory().post(path, data, HTTP_HOST="127.0.0.1", REMOTE_ADDR=address)
    request._dont_enforce_csrf_checks = True
    return request


def measure(rounds: int) -> dict[str, list[tuple[float, float]]]:
    from django.core.handlers.wsgi import WSGIHandler
    from django.urls import reverse

    from accounts.models import User

    handler = WSGIHandler()
    User.objects.create_user("frank", "frank@example.com", PASSWORD)
    reset, signup = reverse("accounts:password_reset"), reverse("accounts:signup")
    results: dict[str, list[tuple[float, float]]] = {}
    for n in range(rounds):
        address = f"10.9.{n // 250}.{n % 250}"
        for label, email in (("known", "frank@example.com"), ("unknown", f"x{n}@example.com")):
            key = f"password reset, {label} email"
            request = post(reset, {"email": email}, address)
            results.setdefault(key, []).append(timed(handler, request))
            data = {"username": f"u{label}{n}", "email": email}
            data |= {"password1": PASSWORD, "password2": PASSWORD}
            key = f"sign-up, {label} email"
            results.setdefault(key, []).append(timed(handler, post(signup, data, address)))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    url, name = bench_database_url("accounts", needs_redis=False)
    database_recreate(url, name)
    os.environ.update(
        DATABASE_URL=url,
        REDIS_URL="",
        DJANGO_SETTINGS_MODULE="liqsite.settings",
        ACCOUNT_EMAILS_PER_ADDRESS_PER_HOUR="100000",
        ACCOUNT_EMAILS_PER_EMAIL_PER_HOUR="100000",
    )
    sys.path.insert(0, str(ROOT))
    try:
        import django
        from django.conf import settings
        from django.core.management import call_command

        django.setup()
        settings.EMAIL_BACKEND = "__main__.SlowSMTP"
        call_command("migrate", verbosity=0)
        results = measure(args.rounds)
    finally:
        from django.db import connections

        connections.close_all()
        database_recreate(url, name, drop_only=True)
    print(
        f"{args.rounds} rounds, median ms (email backend: {SMTP_SECONDS * 1000:.0f} ms a message)"
    )
    print(f"{'form':36} {'response':>9} {'with email':>11}")
    for label, times in results.items():
        answer = statistics.median(t[0] for t in times) * 1000
        full = statistics.median(t[1] for t in times) * 1000
        print(f"{label:36} {answer:9.1f} {full:11.1f}")


if __name__ == "__main__":
    main()
