"""The Celery app: configured from Django settings (CELERY_*), tasks found in each tasks.py."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "liqsite.settings")

app = Celery("liqsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.autodiscover_tasks(["maps.levels"])  # maps/levels/tasks.py
