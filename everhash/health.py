"""GET /healthz: is this instance able to do its job? For load balancers and monitoring.

It checks the database (a query), the media storage (a lookup in the bucket or
the folder), the fetch job (the age of the last successful fetch of any
active album, and any pause of a source: X's usage cap stops every album) and,
answered by the health instance beside the page server
(everhash/gunicorn_health_conf.py), that the page server accepts connections.
Any failing check answers 503, so a probe can alert on the status code. The
public answer carries status words only ("ok", "failing"): error texts name
hosts, buckets and folders, so they go to the log (logger everhash.health), and
to signed-in staff, who get every check's details. Nothing here is cached.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from datetime import timedelta

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import connection
from django.db.models import Max, Min
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from albums.models import Album
from pictures.storage import modified_time
from tweets.models import SourcePause

logger = logging.getLogger("everhash.health")


def max_fetch_age() -> timedelta:
    return timedelta(minutes=settings.EVERHASH_HEALTHZ_MAX_FETCH_AGE_MINUTES)


def check_database() -> dict:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {}


def check_storage() -> dict:
    # A lookup of a key that need not exist: reaches S3 (a HEAD request) or the folder; any
    # failure of the store raises StorageUnavailable, as it would in a fetch.
    modified_time("healthz/probe")
    location = getattr(default_storage, "location", None)
    if isinstance(location, str) and os.path.exists(location) and not os.access(location, os.W_OK):
        raise PermissionError(f"the media folder is not writable: {location}")
    return {}


def check_fetch() -> dict:
    """Stale when no active album was fetched successfully within the allowed age."""
    now = timezone.now()
    active = Album.objects.filter(is_active=True)
    summary = active.aggregate(last=Max("last_success_at"), oldest=Min("created"))
    allowed = max_fetch_age()
    result = {"max_age_seconds": int(allowed.total_seconds()), "failing_albums": active.filter(failures__gt=0).count()}
    # X's usage cap (or its app-wide rate limit) pauses every album: say so, and until when.
    result["paused_sources"] = [
        {"source": pause.source, "kind": pause.kind, "until": pause.until.isoformat(), "message": pause.message}
        for pause in SourcePause.objects.filter(until__gt=now)
    ]
    if summary["oldest"] is None:
        return {**result, "last_success": None, "note": "no active album"}
    last = summary["last"]
    result["last_success"] = last.isoformat() if last else None
    # A new site gets the allowed age to make its first fetch.
    reference = last or summary["oldest"]
    age = now - reference
    result["age_seconds"] = max(int(age.total_seconds()), 0)
    if age > allowed:
        raise StaleFetch(result)
    return result


def check_web() -> dict:
    """In the health instance (everhash/gunicorn_health_conf.py): the page server still accepts
    connections. A busy server passes (its listening socket queues the connection); a dead one
    fails. The page server answering /healthz itself has nothing to check here."""
    address = settings.EVERHASH_HEALTHZ_WEB_ADDRESS
    if not address:
        return {}
    if address.startswith("unix:"):
        family, target = socket.AF_UNIX, address.removeprefix("unix:")
    else:
        host, _, port = address.rpartition(":")
        family, target = socket.AF_INET, (host.strip("[]") or "127.0.0.1", int(port))
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        sock.connect(target)
    return {"address": address}


class StaleFetch(Exception):
    def __init__(self, details: dict) -> None:
        super().__init__(f"no successful fetch for {details['age_seconds']} s (allowed {details['max_age_seconds']} s)")
        self.details = details


CHECKS = {"database": check_database, "storage": check_storage, "fetch": check_fetch, "web": check_web}


def run_checks() -> dict[str, dict]:
    """Every check's details; a failure is logged with its error."""
    checks = {}
    for name, check in CHECKS.items():
        started = time.perf_counter()
        try:
            details = check()
        except Exception as exc:
            details = getattr(exc, "details", {})
            details = {"ok": False, **details, "error": f"{type(exc).__name__}: {exc}"[:300]}
            logger.warning("health check %s failed: %s", name, details["error"], extra={"check": name, **details})
        else:
            details = {"ok": True, **details}
        details["ms"] = round((time.perf_counter() - started) * 1000, 1)
        checks[name] = details
    return checks


def word(ok: bool) -> str:
    return "ok" if ok else "failing"


@never_cache
@require_safe
def healthz(request):
    checks = run_checks()
    healthy = all(details["ok"] for details in checks.values())
    if not request.user.is_staff:
        checks = {name: word(details["ok"]) for name, details in checks.items()}
    return JsonResponse({"status": word(healthy), "checks": checks}, status=200 if healthy else 503)
