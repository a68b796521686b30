"""gunicorn's configuration for production: `gunicorn -c python:everhash.gunicorn_conf everhash.wsgi`.

Every value can be changed from the environment (docs/deploy.rst). Logs are JSON
lines on standard error, like the application's own (everhash/lib/logs.py).
"""

from __future__ import annotations

import multiprocessing
import os

from everhash.lib.logs import FORMATTERS

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# Sync workers: requests are short (the slow work happens in fetch_tweets or Celery).
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2 + 1))
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
# A request stuck this long (a hung storage call) is killed instead of holding a worker forever.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 30
keepalive = 5
# Recycle workers now and then: a slow leak cannot grow without bound.
max_requests = 2000
max_requests_jitter = 200
# The proxy in front (nginx on the same host by default) whose X-Forwarded-* headers are trusted.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# Uploads and zips stream through the worker; keep the request line and headers bounded.
limit_request_line = 4094
limit_request_fields = 100

accesslog = "-"
errorlog = "-"
# %(h)s is the socket's peer (nginx); the client's own address, as the app's limits see it
# (EVERHASH_TRUSTED_PROXIES, everhash/lib/clientip.py), is the environ entry the app sets.
access_log_format = '%(h)s %({everhash.client_ip}e)s "%(r)s" %(s)s %(B)s %(M)sms "%(f)s" "%(a)s"'
_formatter = "plain" if os.environ.get("EVERHASH_LOG_FORMAT") == "plain" else "json"
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": FORMATTERS,
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": _formatter, "stream": "ext://sys.stderr"},
    },
    "loggers": {
        "gunicorn.error": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "gunicorn.access": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}
