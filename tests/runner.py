"""`make test`: run pytest on PostgreSQL and Redis when they answer, else on the embedded default.

DATABASE_URL / REDIS_URL from the environment win; otherwise the local services on their usual
ports are probed. What is missing is said plainly before the run, and the tests that need it are
skipped with that reason (listed again at the end). With LIQSITE_REQUIRE_SERVICES=1 (CI) a missing
service or browser is an error instead.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys

import pytest

LOCAL_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/liqsite"
LOCAL_REDIS_URL = "redis://127.0.0.1:6379/15"


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def main(argv: list[str]) -> int:
    required = os.environ.get("LIQSITE_REQUIRE_SERVICES") == "1"
    lines = []
    if not os.environ.get("DATABASE_URL") and reachable("127.0.0.1", 5432):
        os.environ["DATABASE_URL"] = LOCAL_DATABASE_URL
    if not os.environ.get("REDIS_URL") and reachable("127.0.0.1", 6379):
        os.environ["REDIS_URL"] = LOCAL_REDIS_URL
    db, redis = os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL")
    lines.append(
        f"database: {'PostgreSQL ' + db if db else 'embedded SQLite (PostgreSQL not reachable)'}"
    )
    lines.append(
        f"broker:   {'Redis ' + redis if redis else 'in-process tasks (Redis not reachable)'}"
    )
    browser = shutil.which("chromium") or os.path.exists("/usr/bin/chromium")
    lines.append(
        f"browser:  {'/usr/bin/chromium' if browser else 'none (Debian chromium not installed)'}"
    )
    print("\n".join(lines), flush=True)
    missing = [
        name for name, ok in (("PostgreSQL", db), ("Redis", redis), ("chromium", browser)) if not ok
    ]
    if missing and required:
        print(f"LIQSITE_REQUIRE_SERVICES=1 but missing: {', '.join(missing)}", file=sys.stderr)
        return 2
    if missing:
        print(f"Tests that need {', '.join(missing)} will be skipped.", flush=True)
    return pytest.main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
