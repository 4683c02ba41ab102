from __future__ import annotations

from django.apps import AppConfig
from django.core import checks


class MapsConfig(AppConfig):
    name = "maps"
    verbose_name = "Markets and maps"

    def ready(self) -> None:
        from liqsite.checks import visibility_timeout_check

        checks.register(visibility_timeout_check, "celery")
