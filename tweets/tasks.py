"""Celery tasks: fetch_tweets spread over workers, the optional scale-out path (docs/celery.md).

Beat runs `dispatch_due_albums` on the cron line's schedule; it enqueues one `fetch_album_task`
per due album. Both are thin: the work, the claims and the duplicate-proofing are the same
services the command uses (tweets/services.py), so cron and Celery can run at the same time.
"""

from __future__ import annotations

import logging

from django.utils import timezone

from albums.models import Album
from everhash.celery import app
from tweets.registry import run_sources
from tweets.services import AlbumReport, close_interrupted_runs, fetch_due_album, finish_round

logger = logging.getLogger("everhash.fetch")


@app.task
def dispatch_due_albums() -> int:
    """Enqueue a fetch of every due album, then the end-of-round chores. Returns how many were enqueued."""
    close_interrupted_runs(now=timezone.now())  # runs of dead or hung workers: their albums are due again
    album_ids = list(Album.objects.due().order_by("next_fetch_at", "pk").values_list("pk", flat=True))
    for album_id in album_ids:
        fetch_album_task.delay(album_id)
    # Each fetch task builds its own album's collage; the chores take the other stale ones.
    finish_round(collages_built_elsewhere=album_ids)
    logger.info("dispatch albums=%d", len(album_ids), extra={"albums": len(album_ids)})
    return len(album_ids)


@app.task(bind=True)
def fetch_album_task(self, album_id: int) -> None:
    """Fetch one album if it is still due (a duplicate or a late task does nothing).

    An album another run holds (cron, `--album`, another worker) is left to it: the log says
    status=busy, and the album is fetched again when it is next due.
    """
    worker = self.request.hostname
    # A source whose credentials are refused is reported in the album's report (retrying cannot help
    # until an operator fixes them; they cost the album no back-off).
    report = fetch_due_album(album_id=album_id, sources=run_sources())
    if report is None:
        fields = {"album_id": album_id, "status": "not_due", "worker": worker}
        logger.info("fetch album_id=%s status=not_due worker=%s", album_id, worker, extra=fields)
        return
    level = logging.WARNING if report.status in ("failed", "partial") else logging.INFO
    fields = {"album_id": album_id, "worker": worker, **report.as_dict()}
    fields.pop("rejections")
    fields["sources"] = [part.describe() for part in report.sources]
    logger.log(level, _line(album_id, report, worker), extra=fields)


def _line(album_id: int, report: AlbumReport, worker: str) -> str:
    """One key=value line per fetch, the album's counts and the worker that ran it."""
    line = (
        f"fetch album_id={album_id} album=#{report.hashtag} status={report.status} added={report.added} "
        f"duplicates={report.duplicates} rejected={report.rejected} skipped={report.skipped} "
        f"posts={report.posts_seen} requests={report.requests} milestones_sent={report.milestones_sent} "
        f"worker={worker}"
    )
    return f"{line} error={report.error!r}" if report.error else line
