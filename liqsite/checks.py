"""System checks of settings that only make sense against the code: the broker's visibility timeout
against the tasks' time limits and retry countdowns."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning

# A visibility timeout this much above what the tasks need only delays the recovery of the tasks
# of a killed worker.
VISIBILITY_SLACK_SECONDS = 600


def longest_task_seconds() -> tuple[str, int]:
    """The task that may stay unacknowledged longest (its retry countdown plus its time limit)."""
    import accounts.tasks  # noqa: F401  (register the tasks)
    import maps.tasks
    from liqsite.celery import app

    limits = {
        name: task.time_limit or settings.CELERY_TASK_TIME_LIMIT
        for name, task in app.tasks.items()
        if name.startswith(("maps.", "accounts."))
    }
    name = max(limits, key=limits.__getitem__)
    return name, limits[name] + maps.tasks.RETRY_COUNTDOWN_MAX_SECONDS


def visibility_timeout_check(app_configs: object = None, **kwargs: object) -> list[CheckMessage]:
    timeout = settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    name, needed = longest_task_seconds()
    if timeout <= needed:
        return [
            Error(
                f"CELERY_VISIBILITY_TIMEOUT={timeout} is not above {needed} s, the longest a task "
                f"({name}) stays unacknowledged: Redis would hand it to a second worker while the "
                "first still waits out its retry or runs it.",
                hint=f"Set CELERY_VISIBILITY_TIMEOUT a little above {needed}.",
                id="liqsite.E001",
            )
        ]
    if timeout > needed + VISIBILITY_SLACK_SECONDS:
        return [
            Warning(
                f"CELERY_VISIBILITY_TIMEOUT={timeout} is far above {needed} s, the longest a task "
                f"({name}) stays unacknowledged: the tasks of a killed worker wait {timeout} s "
                "before another worker takes them.",
                hint=f"Set CELERY_VISIBILITY_TIMEOUT a little above {needed}.",
                id="liqsite.W001",
            )
        ]
    return []
