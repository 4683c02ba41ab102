from __future__ import annotations

import os
import shutil

import pytest

REQUIRED = os.environ.get("LIQSITE_REQUIRE_SERVICES") == "1"


def _missing_service(marker: str) -> str | None:
    from django.db import connection

    if marker == "postgres" and connection.vendor != "postgresql":
        return "needs PostgreSQL: DATABASE_URL is not set or not reachable"
    if marker == "redis" and not os.environ.get("REDIS_URL"):
        return "needs Redis: REDIS_URL is not set or not reachable"
    if marker == "browser" and not (
        shutil.which("chromium") or os.path.exists("/usr/bin/chromium")
    ):
        return "needs headless Chromium: install Debian's chromium package"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        for marker in ("postgres", "redis", "browser"):
            if item.get_closest_marker(marker) is None:
                continue
            reason = _missing_service(marker)
            if reason and REQUIRED:
                raise pytest.UsageError(f"{item.nodeid} {reason} (LIQSITE_REQUIRE_SERVICES=1)")
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    skipped = terminalreporter.stats.get("skipped", [])
    reasons: dict[str, int] = {}
    for report in skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if reason.startswith("Skipped: "):
            reason = reason[len("Skipped: ") :]
        if reason.startswith("needs "):
            reasons[reason] = reasons.get(reason, 0) + 1
    if reasons:
        terminalreporter.section("skipped for lack of a service")
        for reason, count in sorted(reasons.items()):
            terminalreporter.write_line(f"{count:4d} test(s) {reason}")
