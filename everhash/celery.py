"""The Celery app: the optional scale-out path for fetching albums (docs/celery.md).

Not imported by everhash/__init__.py: `make run` installs only requirements/base.txt, which has no
Celery, and cron needs none of it. Workers and beat load it with `celery -A everhash ...`; tasks
import `app` from here.
"""

from __future__ import annotations

import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "everhash.settings")

app = Celery("everhash")
# Every CELERY_* setting without its prefix (CELERY_BROKER_URL is broker_url): everhash/settings.py.
app.config_from_object("django.conf:settings", namespace="CELERY")
# The tasks.py of every installed app (tweets/tasks.py).
app.autodiscover_tasks()


@signals.worker_init.connect
@signals.beat_init.connect
def require_a_broker(**kwargs) -> None:
    """Without CELERY_BROKER_URL Celery would quietly try a default broker and log reconnects forever."""
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    if not settings.CELERY_BROKER_URL:
        raise ImproperlyConfigured(
            "CELERY_BROKER_URL is not set: set it to the Redis broker (redis://127.0.0.1:6379/0), "
            "or run `manage.py fetch_tweets` from cron instead of Celery (docs/deploy.rst)."
        )


@signals.after_setup_logger.connect
@signals.after_setup_task_logger.connect
def structured_logs(logger, **kwargs) -> None:
    """Workers and beat log JSON lines like the web (EVERHASH_LOG_FORMAT, everhash/lib/logs.py)."""
    from django.conf import settings

    from everhash.lib.logs import JsonFormatter

    if settings.EVERHASH_LOG_FORMAT == "json":
        for handler in logger.handlers:
            handler.setFormatter(JsonFormatter())
