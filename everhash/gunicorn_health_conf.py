"""gunicorn for /healthz alone, beside the page server:
`gunicorn -c python:everhash.gunicorn_health_conf everhash.wsgi` (docs/deploy.rst).

The page server's sync workers answer one request at a time, so under load a probe waits in
the same queue as the pages (1.5 s at 50 clients, 8 s at 200: a load balancer with a short
timeout would take a busy, healthy server out). nginx sends /healthz here instead: a worker of
its own that only answers probes. It checks what /healthz always checks (database, storage,
fetch age) and that the page server still accepts connections (EVERHASH_HEALTHZ_WEB_ADDRESS,
set below from GUNICORN_BIND), so a dead page server still takes the instance out.
"""

from __future__ import annotations

import os

from everhash.gunicorn_conf import (  # the same logs, limits and proxy trust as the page server
    access_log_format,
    accesslog,
    errorlog,
    forwarded_allow_ips,
    limit_request_fields,
    limit_request_line,
    logconfig_dict,
    max_requests,
    max_requests_jitter,
    timeout,
)
from everhash.gunicorn_conf import bind as page_server

bind = os.environ.get("GUNICORN_HEALTH_BIND", "127.0.0.1:8001")
# One process, a few threads: a probe never waits for another probe's slow storage lookup.
workers = 1
threads = 4
raw_env = [f"EVERHASH_HEALTHZ_WEB_ADDRESS={page_server}"]

__all__ = [
    "access_log_format",
    "accesslog",
    "bind",
    "errorlog",
    "forwarded_allow_ips",
    "limit_request_fields",
    "limit_request_line",
    "logconfig_dict",
    "max_requests",
    "max_requests_jitter",
    "raw_env",
    "threads",
    "timeout",
    "workers",
]
