"""The Celery app: the optional scale-out path for fetching albums (docs/celery.md).

Not imported by everhash/__init__.py: `make run` installs only requirements/base.txt, which has no
Celery, and cron needs none of it. Workers and beat load it with `celery -A everhash ...`; tasks
import `app` from here.
"""

from __future__ import annotations

import os
import sys

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "everhash.settings")

app = Celery("everhash")
# Every CELERY_* setting without its prefix (CELERY_BROKER_URL is broker_url): everhash/settings.py.
app.config_from_object("django.conf:settings", namespace="CELERY")
# The tasks.py of every installed app (tweets/tasks.py).
app.autodiscover_tasks()


def require_a_broker() -> None:
    """Without CELERY_BROKER_URL Celery would quietly try a default AMQP broker and retry forever.

    Checked when the `celery` command loads the app (worker, beat...): a signal handler cannot
    stop a worker, since Celery logs and swallows a receiver's exception.
    """
    from django.conf import settings

    run_by_the_command = "celery.bin.celery" in sys.modules  # `celery ...` or `python -m celery ...`
    if run_by_the_command and not settings.CELERY_BROKER_URL:
        raise SystemExit(
            "CELERY_BROKER_URL is not set: set it to the Redis broker (redis://127.0.0.1:6379/0), "
            "or run `manage.py fetch_tweets` from cron instead of Celery (docs/deploy.rst)."
        )


require_a_broker()


@signals.after_setup_logger.connect
@signals.after_setup_task_logger.connect
def structured_logs(logger, **kwargs) -> None:
    """Workers and beat log JSON lines like the web (EVERHASH_LOG_FORMAT, everhash/lib/logs.py)."""
    from django.conf import settings

    from everhash.lib.logs import JsonFormatter

    if settings.EVERHASH_LOG_FORMAT == "json":
        for handler in logger.handlers:
            handler.setFormatter(JsonFormatter())
