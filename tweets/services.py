"""fetch_tweets' workflow: from a source's pages to stored pictures, for one album at a time.

`fetch_album` polls newer posts (since_id), then walks older pages (next_token)
while the album's history is incomplete, within a page budget. Each album's
work is claimed in the database first, so overlapping runs (cron, a manual run,
Celery) never fetch the same album at once; the unique constraints make even an
unclaimed overlap harmless. One album's failure backs it off and never stops
the others, except a refused token (AuthFailed), which stops the run.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError
from django.db.models import F
from django.utils import timezone

from albums.models import Album
from albums.services import announce_pending_milestones, update_milestones
from collages.services import BuildSummary, build_stale_collages
from pictures.models import Picture
from pictures.moderation import Policy
from pictures.services import ingest_photo, load_signature_index
from pictures.storage import StorageUnavailable
from tweets.models import FetchRun
from tweets.sources import AuthFailed, MediaError, Page, Post, RateLimited, Source, SourceError, StaleCursor

logger = logging.getLogger("everhash.fetch")

# While an album is being fetched, its next_fetch_at is pushed this far ahead:
# another run skips it; if this run dies, the album is due again after the lease.
CLAIM_LEASE = timedelta(minutes=15)
MAX_BACKOFF = timedelta(hours=6)
DEFAULT_MAX_PAGES = 5


@dataclass
class AlbumReport:
    """The outcome of one album's fetch, for the command's output and --json."""

    hashtag: str
    status: str = "ok"  # ok, failed, rate_limited, skipped, dry_run
    requests: int = 0
    posts_seen: int = 0
    added: int = 0
    duplicates: int = 0
    rejected: int = 0
    skipped: int = 0
    milestones_sent: int = 0
    error: str = ""
    new_photos: int = 0  # --dry-run: photos not stored yet
    rejections: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def interval() -> timedelta:
    return timedelta(minutes=settings.EVERHASH_FETCH_INTERVAL_MINUTES)


def backoff(failures: int) -> timedelta:
    """Exponential back-off for an album that keeps failing, with jitter, capped."""
    base = interval() * (2 ** min(failures, 10))
    return min(base, MAX_BACKOFF) * random.uniform(0.9, 1.1)  # noqa: S311  (jitter, not security)


def claim_album(*, album: Album, now: datetime) -> bool:
    """Claim the album for this run with a conditional update on next_fetch_at."""
    claimed = Album.objects.filter(pk=album.pk, next_fetch_at=album.next_fetch_at).update(
        next_fetch_at=now + CLAIM_LEASE
    )
    if album.next_fetch_at is None and not claimed:
        claimed = Album.objects.filter(pk=album.pk, next_fetch_at__isnull=True).update(next_fetch_at=now + CLAIM_LEASE)
    return bool(claimed)


def policy_status(*, album: Album, post: Post, policy: Policy) -> str | None:
    """The status a post's pictures arrive with, or None to skip the post.

    Skipped: a taken-down post, a blocked author (this album's list or the global one), and
    per the album's settings a blocked word in the text or media flagged sensitive. Held for
    review (pending): the same when the album holds them, and every post of an approve-first album.
    """
    if policy.is_taken_down(post.id):
        logger.debug("#%s: skipped %s: taken down", album.hashtag, post.permalink)
        return None
    if policy.is_blocked_author(post.author_handle):
        logger.debug("#%s: skipped %s: @%s is blocked", album.hashtag, post.permalink, post.author_handle)
        return None
    held = False
    if policy.blocked_word(post.text):
        if album.blocked_words_action == Album.BlockedWordsAction.SKIP:
            logger.debug("#%s: skipped %s: a blocked word", album.hashtag, post.permalink)
            return None
        held = True
    if post.sensitive:
        if album.sensitive_media == Album.SensitiveMedia.SKIP:
            logger.debug("#%s: skipped %s: sensitive media", album.hashtag, post.permalink)
            return None
        if album.sensitive_media == Album.SensitiveMedia.HOLD:
            held = True
    if held or album.moderation == Album.Moderation.APPROVE_FIRST:
        return Picture.Status.PENDING
    return Picture.Status.VISIBLE


class _AlbumFetch:
    """The state of one album's fetch: counts, the signature index, known media keys."""

    def __init__(self, *, album: Album, source: Source, report: AlbumReport, dry_run: bool, progress) -> None:
        self.album = album
        self.source = source
        self.report = report
        self.dry_run = dry_run
        self.progress = progress
        self.index = None if dry_run else load_signature_index(album=album)
        self.known = set(Picture.objects.filter(album=album, source=source.name).values_list("media_key", flat=True))
        # Block lists, read once per album per run; photos a moderator deleted count as known.
        self.policy = Policy.for_album(album, source=source.name)
        self.known |= self.policy.deleted_media

    def search(self, **cursor) -> Page:
        page = self.source.search(hashtag=self.album.hashtag, **cursor)
        self.report.requests += page.requests
        return page

    def process(self, page: Page) -> None:
        for post in page.posts:
            self.report.posts_seen += 1
            self.process_post(post)
            if self.progress:
                self.progress(self.report)

    def process_post(self, post: Post) -> None:
        new_photos = [photo for photo in post.photos if photo.media_key not in self.known]
        if not new_photos:
            if not self.dry_run:
                # Seen again (a backfill walk): "popular" follows the latest like count.
                Picture.objects.filter(album=self.album, source=self.source.name, post_id=post.id).exclude(
                    like_count=post.like_count
                ).update(like_count=post.like_count)
            return
        if self.dry_run:
            self.report.new_photos += len(new_photos)
            return
        status = policy_status(album=self.album, post=post, policy=self.policy)
        if status is None:
            self.report.skipped += 1
            return
        for photo in new_photos:
            try:
                data = self.source.download(photo)
            except MediaError as exc:
                self.reject(photo.media_key, post, exc.reason, str(exc))
                continue
            try:
                outcome = ingest_photo(
                    album=self.album,
                    source=self.source.name,
                    post=post,
                    photo=photo,
                    data=data,
                    index=self.index,
                    status=status,
                )
            except (DatabaseError, StorageUnavailable):
                raise  # the database or the storage is down: the album fails and retries later
            except Exception as exc:
                # A bug met by one odd picture must not block the album's other pictures forever.
                logger.exception("#%s: could not store %s", self.album.hashtag, photo.media_key)
                self.reject(photo.media_key, post, "internal", f"Internal error: {type(exc).__name__}: {exc}")
                continue
            self.known.add(photo.media_key)
            if outcome.kind == "added":
                self.report.added += 1
            elif outcome.kind == "duplicate":
                self.report.duplicates += 1
            else:
                self.reject(photo.media_key, post, outcome.reason, outcome.message)

    def reject(self, media_key: str, post: Post, reason: str, message: str) -> None:
        self.report.rejected += 1
        self.report.rejections.append(
            {"media_key": media_key, "post": post.permalink, "reason": reason, "message": message}
        )
        logger.info("#%s: rejected %s from %s: %s", self.album.hashtag, media_key, post.permalink, message)

    def walk(self, *, since_id: str | None, next_token: str | None, budget: int) -> tuple[str | None, str | None, int]:
        """Fetch pages from a cursor until the end or the budget.

        Returns (newest id seen on the first page, the token to continue older, pages used).
        """
        newest = None
        pages = 0
        while pages < budget:
            page = self.search(since_id=since_id, next_token=next_token)
            pages += 1
            if newest is None:
                newest = page.newest_id
            self.process(page)
            next_token = page.next_token
            if not next_token:
                break
        return newest, next_token, pages


def fetch_album(
    *,
    album: Album,
    source: Source,
    max_pages: int = DEFAULT_MAX_PAGES,
    backfill: bool = False,
    dry_run: bool = False,
    progress: Callable[[AlbumReport], None] | None = None,
) -> AlbumReport:
    """Fetch one album's new posts and store their photos. Never raises SourceError (AuthFailed aside)."""
    now = timezone.now()
    report = AlbumReport(hashtag=album.hashtag)
    if album.rate_limited_until and album.rate_limited_until > now:
        report.status = "rate_limited"
        report.error = f"Rate limited by the source until {album.rate_limited_until:%H:%M} UTC."
        return report
    if dry_run:
        return _dry_run(album=album, source=source, max_pages=max_pages, report=report, progress=progress)
    if not claim_album(album=album, now=now):
        report.status = "skipped"
        report.error = "Another run is fetching this album."
        return report

    run = FetchRun.objects.create(album=album, started=now, backfill=backfill)
    fetch = _AlbumFetch(album=album, source=source, report=report, dry_run=False, progress=progress)
    state: dict = {}
    try:
        _fetch_pages(fetch=fetch, album=album, max_pages=max_pages, backfill=backfill, state=state)
    except AuthFailed as exc:
        report.status = "failed"
        report.error = str(exc)
        # Not the album's fault: no back-off, it is due again as soon as the token is fixed.
        _finish(run=run, album=album, report=report, state={"next_fetch_at": now}, error=str(exc))
        raise
    except RateLimited as exc:
        report.status = "rate_limited"
        report.error = str(exc)
        state.update(rate_limited_until=exc.reset_at, next_fetch_at=max(exc.reset_at, now + interval()))
    except SourceError as exc:
        report.status = "failed"
        report.error = str(exc)
        state.update(
            failures=F("failures") + 1,
            next_fetch_at=now + backoff(album.failures + 1),
            last_error=str(exc)[:2000],
            last_error_at=timezone.now(),
        )
    except Exception as exc:
        # A bug or an unexpected failure in one album must not stop the others.
        logger.exception("#%s: fetch failed", album.hashtag)
        report.status = "failed"
        report.error = f"Internal error: {type(exc).__name__}: {exc}"
        state.update(
            failures=F("failures") + 1,
            next_fetch_at=now + backoff(album.failures + 1),
            last_error=report.error[:2000],
            last_error_at=timezone.now(),
        )
    else:
        state.update(
            failures=0,
            next_fetch_at=timezone.now() + interval(),
            last_success_at=timezone.now(),
            last_error="",
            rate_limited_until=None,
        )
    _finish(run=run, album=album, report=report, state=state, error=report.error)
    album.refresh_from_db()
    if report.added:
        report.milestones_sent = update_milestones(album=album)
    return report


def fetch_due_album(*, album_id: int, source: Source, max_pages: int = DEFAULT_MAX_PAGES) -> AlbumReport | None:
    """Fetch one album if it is still due, then build its collage if that went stale.

    None when the album is no longer due (a duplicate task, or another runner fetched it first):
    nothing was done. The claim in `fetch_album` settles a runner arriving between the two.
    """
    album = Album.objects.due().filter(pk=album_id).first()
    if album is None:
        return None
    report = fetch_album(album=album, source=source, max_pages=max_pages)
    build_stale_collages(albums=Album.objects.filter(pk=album.pk, collage_stale=True))
    return report


def finish_round(*, collages_built_elsewhere: Iterable[int] = ()) -> BuildSummary:
    """What ends every round of fetches (the command's run, Celery's dispatch).

    Milestone emails that failed earlier (SMTP down...) are sent again, and the stale collages are
    built, except those of `collages_built_elsewhere` (albums whose own fetch task builds them).
    """
    announce_pending_milestones()
    stale = Album.objects.filter(collage_stale=True).exclude(pk__in=list(collages_built_elsewhere))
    return build_stale_collages(albums=stale.order_by("pk"))


def _fetch_pages(*, fetch: _AlbumFetch, album: Album, max_pages: int, backfill: bool, state: dict) -> None:
    budget = max_pages
    newest_cursor = album.newest_post_id or None
    older_token = album.backfill_token or None
    history_done = album.backfill_done and not backfill
    if backfill:
        older_token = None  # walk the whole search window again from the top

    if newest_cursor and not backfill:
        try:
            newest, continuation, used = fetch.walk(since_id=newest_cursor, next_token=None, budget=budget)
        except StaleCursor:
            logger.info("#%s: since_id %s is older than the search window; starting over", album.hashtag, newest_cursor)
            newest_cursor, older_token = None, None
            state["newest_post_id"] = ""
        else:
            budget -= used
            if newest:
                state["newest_post_id"] = newest
            if continuation:
                # More new posts than the page budget: finish them through the older walk.
                state.update(backfill_token=continuation, backfill_done=False)
                older_token, history_done = continuation, False

    if not newest_cursor or backfill or not history_done:
        if budget <= 0:
            return
        newest, continuation, _ = fetch.walk(since_id=None, next_token=older_token, budget=budget)
        if newest and not older_token and not state.get("newest_post_id"):
            state["newest_post_id"] = newest
        state.update(backfill_token=continuation or "", backfill_done=continuation is None)


def _finish(*, run: FetchRun, album: Album, report: AlbumReport, state: dict, error: str) -> None:
    now = timezone.now()
    FetchRun.objects.filter(pk=run.pk).update(
        finished=now,
        requests_made=report.requests,
        posts_seen=report.posts_seen,
        pictures_added=report.added,
        duplicates=report.duplicates,
        rejected=report.rejected,
        skipped=report.skipped,
        error=error[:5000],
        rejections=report.rejections[:200],
    )
    # Each stored picture already marked the collage stale (pictures_changed); likes may have
    # changed even when nothing was added, so cached pages and ETags move on too.
    Album.objects.filter(pk=album.pk).bump_version(collage_stale=False, last_fetch_at=now, **state)


def _dry_run(*, album: Album, source: Source, max_pages: int, report: AlbumReport, progress) -> AlbumReport:
    report.status = "dry_run"
    fetch = _AlbumFetch(album=album, source=source, report=report, dry_run=True, progress=progress)
    try:
        if album.newest_post_id:
            fetch.walk(since_id=album.newest_post_id, next_token=None, budget=max_pages)
        else:
            fetch.walk(since_id=None, next_token=album.backfill_token or None, budget=max_pages)
    except SourceError as exc:
        report.error = str(exc)
    return report
