"""fetch_tweets' workflow: from a source's pages to stored pictures, for one album at a time.

`fetch_album` first finishes an unfinished walk (older pages of an earlier run,
within the `since_id` it started under), then reads what is newer than the newest
post it has read, within a page budget: no post is read twice (X bills every post
read; docs/fetching.md has the figures). Each album's work is claimed in the
database first (its live FetchRun, leased and renewed after every picture, with the
counts so far), so overlapping runs (cron, a manual run, Celery, other machines) never
fetch the same album at once; the unique constraints make even an unclaimed overlap
harmless. One album's failure backs it off and never stops the others, except a refused
token (AuthFailed), which stops the run, and X's rate limit or usage cap, which pauses
every album (SourcePause) until it ends. A stop request (SIGTERM) ends a fetch between
pictures, abandoning the downloads in flight.

Photos whose download fails for a reason that may pass are kept as PendingMedia and
tried again by later runs; an album's photos download concurrently, and a media host
that keeps failing is skipped for the rest of the run (RunState).
"""

from __future__ import annotations

import logging
import os
import queue
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import urlsplit

from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F, Q, Sum
from django.utils import timezone

from albums.models import Album
from albums.services import announce_pending_milestones, pictures_changed, record_milestones, update_milestones
from collages.services import BuildSummary, build_stale_collages
from pictures.models import Picture
from pictures.moderation import Policy
from pictures.services import credit, ingest_photo, load_signature_index
from pictures.storage import StorageUnavailable
from tweets.models import AlbumSource, FetchRun, PendingMedia, SourcePause
from tweets.sources import (
    AuthFailed,
    MediaError,
    Page,
    Photo,
    Post,
    RateLimited,
    Source,
    SourceError,
    StaleCursor,
    UsageCapped,
)

logger = logging.getLogger("everhash.fetch")

# A run holds its album's claim this long past its last sign of progress (a picture processed):
# if its process dies or hangs, another run takes the album over after at most this.
CLAIM_LEASE = timedelta(minutes=15)
MAX_BACKOFF = timedelta(hours=6)
DEFAULT_MAX_PAGES = 5


@dataclass
class Counts:
    """What a fetch did: of one album from one source (SourceReport), or of all its sources (AlbumReport)."""

    requests: int = 0  # every HTTP request to the source, failed ones and retries included
    posts_seen: int = 0  # every post the source returned (what X bills)
    added: int = 0
    duplicates: int = 0
    rejected: int = 0
    skipped: int = 0
    new_photos: int = 0  # --dry-run: photos not stored yet
    pending: int = 0  # photos whose download failed for now: later runs try again
    retried: int = 0  # photos stored on another try
    rejections: list[dict] = field(default_factory=list)


COUNTS = ("requests", "posts_seen", "added", "duplicates", "rejected", "skipped", "new_photos", "pending", "retried")


@dataclass
class SourceReport(Counts):
    """The outcome of fetching one album from one source."""

    key: str = ""
    label: str = ""
    # ok, failed, rate_limited, paused, stopped, interrupted, busy, dry_run; or not asked: backing_off.
    status: str = "ok"
    error: str = ""
    refused: bool = False  # the credentials were refused: not the album's fault, asked no more this run

    def describe(self) -> str:
        """What owners and operators read: "mastodon.social: 12 posts, 9 pictures", or why not."""
        if self.status == "dry_run":
            line = f"{self.label}: would store {self.new_photos} new photos"
            return f"{line} ({self.error})" if self.error else line
        if self.status == "ok":
            return f"{self.label}: {self.posts_seen} posts, {self.added} pictures"
        return f"{self.label}: {self.error or self.status.replace('_', ' ')}"


@dataclass
class AlbumReport(Counts):
    """The outcome of one album's fetch, every source together, for the command's output and --json."""

    hashtag: str = ""
    # ok, partial (a source failed, another worked), failed, rate_limited, paused, stopped, interrupted,
    # busy (another run holds it), backing_off (every source waits), skipped, dry_run
    status: str = "ok"
    error: str = ""
    milestones_sent: int = 0
    sources: list[SourceReport] = field(default_factory=list)

    def add(self, part: SourceReport) -> None:
        self.sources.append(part)
        for name in COUNTS:
            setattr(self, name, getattr(self, name) + getattr(part, name))
        self.rejections.extend(part.rejections)

    def as_dict(self) -> dict:
        return asdict(self)


def interval() -> timedelta:
    return timedelta(minutes=settings.EVERHASH_FETCH_INTERVAL_MINUTES)


def backoff(failures: int) -> timedelta:
    """Exponential back-off for an album that keeps failing, with jitter, capped."""
    base = interval() * (2 ** min(failures, 10))
    return min(base, MAX_BACKOFF) * random.uniform(0.9, 1.1)  # noqa: S311  (jitter, not security)


class Stopped(BaseException):  # noqa: N818  (a request, like KeyboardInterrupt, not an error)
    """A stop was requested (SIGTERM): the fetch ends at a safe point between pictures.

    A BaseException, so that no `except Exception` on the way (a download's, a retry loop's) takes it.
    """


class StopRequest:
    """Set from a signal handler, read by a fetch between pictures.

    While a search or a download is in flight (`abortable`: nothing is being written), a request
    interrupts it at once, so a slow media host cannot hold a shutdown past a stop timeout.
    """

    def __init__(self) -> None:
        self.requested = False
        self._abortable = False

    def request(self) -> None:
        self.requested = True
        if self._abortable:
            raise Stopped

    def check(self) -> None:
        if self.requested:
            raise Stopped

    @contextmanager
    def abortable(self) -> Iterator[None]:
        self.check()
        self._abortable = True
        try:
            yield
        finally:
            self._abortable = False


class ClaimLost(Exception):
    """This run's lease lapsed and another run closed it and took the album over."""


def holder_id() -> str:
    """Who runs a fetch: host and process id, so a run on this host can tell a dead holder."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _holder_is_gone(holder: str) -> bool:
    """True when the holder ran on this host and its process no longer exists."""
    host, _, pid = holder.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another machine's process: only its lease tells
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, under another user
    return False


def close_interrupted_runs(*, now: datetime, album: Album | None = None) -> int:
    """Close the runs whose lease expired or whose process on this host is gone, as interrupted.

    Their counts so far stay (a run writes them as it goes); their albums are due again at once
    and claimable. Returns how many were closed.
    """
    running = FetchRun.objects.filter(status=FetchRun.Status.RUNNING)
    if album is not None:
        running = running.filter(album=album)
    closed = 0
    for run in running.only("pk", "album_id", "lease_until", "holder"):
        expired = run.lease_until is None or run.lease_until < now
        if not expired and not _holder_is_gone(run.holder):
            continue
        why = "its lease expired (it hung or lost its host)" if expired else "its process is gone (killed or crashed)"
        if FetchRun.objects.filter(pk=run.pk, status=FetchRun.Status.RUNNING, lease_until=run.lease_until).update(
            status=FetchRun.Status.INTERRUPTED,
            claim=None,
            finished=now,
            error=f"Interrupted: {why}; the next run continues from the album's last saved cursor.",
        ):
            Album.objects.filter(pk=run.album_id).update(next_fetch_at=now)
            logger.warning("Closed fetch run %s of album %s as interrupted: %s", run.pk, run.album_id, why)
            closed += 1
    return closed


def claim_album(
    *, album: Album, source: str, now: datetime, forced: bool = False, backfill: bool = False
) -> FetchRun | None:
    """Claim the album for this run: its FetchRun, or None when another live run holds it.

    A scheduled fetch first takes the album off the schedule with a conditional update on
    next_fetch_at (a duplicate Celery task or a second cron run finds it no longer due); a named
    one (`--album`, `forced`) does not need it to be due. Either way the unique `claim` of a live
    FetchRun decides: never two runs of one album at once, on any number of machines.
    """
    close_interrupted_runs(now=now, album=album)
    albums = Album.objects.filter(pk=album.pk)
    if not forced and not albums.filter(next_fetch_at=album.next_fetch_at).update(next_fetch_at=now + CLAIM_LEASE):
        return None
    run = _take_claim(album=album, source=source, now=now, backfill=backfill)
    if run is None:
        return None
    if forced:
        albums.update(next_fetch_at=now + CLAIM_LEASE)  # scheduled runs leave it alone meanwhile
    return run


def describe_busy(*, album: Album) -> str:
    """What an entry point says about an album another run is fetching."""
    run = FetchRun.objects.filter(claim=album).first()
    if run is None:
        return f"#{album.hashtag} is being fetched by another run."
    return (
        f"#{album.hashtag} is being fetched by another run (since {run.started:%H:%M:%S} UTC, "
        f"by {run.holder or 'an unknown process'})."
    )


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


class HostBreaker:
    """Media hosts that failed `limit` times in a row are skipped for the rest of the run.

    Shared by the download threads (and by every album of a run): one slow or broken host must not
    cost a deadline per photo. Skipped photos are kept as PendingMedia, not lost.
    """

    def __init__(self, *, limit: int) -> None:
        self.limit = limit
        self._failures: Counter[str] = Counter()
        self._lock = threading.Lock()

    def is_open(self, host: str) -> bool:
        with self._lock:
            return self._failures[host] >= self.limit

    def record(self, host: str, *, ok: bool) -> None:
        with self._lock:
            if ok:
                self._failures[host] = 0
            elif self._failures[host] < self.limit:
                self._failures[host] += 1
                if self._failures[host] == self.limit:
                    logger.warning("media host %s failed %d times in a row: skipped for this run", host, self.limit)


class RunState:
    """What the albums of one run share: its time budget and the media hosts it gave up on.

    The budget ends a run before the next cron run is due: no album is started and no page or
    photo is asked for once it is spent (photos not downloaded wait as PendingMedia).
    """

    def __init__(self, *, budget_seconds: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        if budget_seconds is None:
            budget_seconds = settings.EVERHASH_FETCH_RUN_BUDGET_SECONDS
        self.budget_seconds = budget_seconds
        self._clock = clock
        self._ends_at = clock() + budget_seconds
        self.hosts = HostBreaker(limit=settings.EVERHASH_MEDIA_HOST_FAILURES)

    def out_of_time(self) -> bool:
        return self._clock() >= self._ends_at


# --- Source pauses: X's app-wide rate limit and usage cap ------------------------


def active_pauses(*, sources: Iterable[str], now: datetime | None = None) -> dict[str, SourcePause]:
    """The pauses in force among these source keys, by key in their order (one query): no request
    may be made to a paused source before its pause ends."""
    sources = list(sources)
    pauses = SourcePause.objects.filter(source__in=sources, until__gt=now or timezone.now())
    found = {pause.source: pause for pause in pauses}
    return {key: found[key] for key in sources if key in found}


def pause_source(*, source: str, error: RateLimited) -> SourcePause:
    """Stop every album asking `source` until `error.reset_at` (a circuit breaker kept across runs)."""
    kind = SourcePause.Kind.USAGE_CAP if isinstance(error, UsageCapped) else SourcePause.Kind.RATE_LIMIT
    pause, _ = SourcePause.objects.update_or_create(
        source=source, defaults={"kind": kind, "until": error.reset_at, "message": str(error)[:2000]}
    )
    logger.warning("%s paused until %s: %s", source, error.reset_at.isoformat(), error)
    return pause


def resume_source(*, source: str) -> bool:
    """Lift a pause by hand (after buying X credits, for instance). True when there was one."""
    deleted, _ = SourcePause.objects.filter(source=source).delete()
    return bool(deleted)


# --- Posts read and their cost ------------------------------------------------------


def posts_read(*, now: datetime | None = None, source: str = "x") -> list[dict]:
    """Posts read (what X bills) and requests made per album, today and this month (UTC), with
    the estimated cost at EVERHASH_X_COST_PER_POST. Albums that read nothing this month are left out."""
    now = (now or timezone.now()).astimezone(UTC)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    month = day.replace(day=1)
    today = Q(started__gte=day)
    rows = (
        FetchRun.objects.filter(source=source, started__gte=month)
        .values("album__hashtag")
        .annotate(
            posts_month=Sum("posts_seen"),
            posts_today=Sum("posts_seen", filter=today, default=0),
            requests_month=Sum("requests_made"),
            requests_today=Sum("requests_made", filter=today, default=0),
        )
        .order_by("-posts_month", "album__hashtag")
    )
    price: Decimal = settings.EVERHASH_X_COST_PER_POST
    return [
        {
            "album": row["album__hashtag"],
            "posts_today": row["posts_today"],
            "posts_month": row["posts_month"],
            "requests_today": row["requests_today"],
            "requests_month": row["requests_month"],
            "cost_today": str(price * row["posts_today"]),
            "cost_month": str(price * row["posts_month"]),
        }
        for row in rows
    ]


# --- Photos retried by later runs -------------------------------------------------------


def retry_delay(attempts: int) -> timedelta:
    """Back-off between tries of a pending photo: 5 minutes, doubling, at most 6 hours."""
    return min(timedelta(minutes=5) * 2 ** max(attempts - 1, 0), MAX_BACKOFF)


def _post_json(post: Post, photo: Photo) -> dict:
    return {
        "id": post.id,
        "permalink": post.permalink,
        "author_handle": post.author_handle,
        "author_name": post.author_name,
        "text": post.text,
        "like_count": post.like_count,
        "posted_at": post.posted_at.isoformat(),
        "sensitive": post.sensitive,
        "photo": {
            "media_key": photo.media_key,
            "url": photo.url,
            "width": photo.width,
            "height": photo.height,
            "alt_text": photo.alt_text,
        },
    }


def _post_from_json(data: dict) -> tuple[Post, Photo]:
    photo = Photo(**data["photo"])
    post = Post(
        id=data["id"],
        permalink=data["permalink"],
        author_handle=data["author_handle"],
        author_name=data["author_name"],
        text=data["text"],
        like_count=data["like_count"],
        posted_at=datetime.fromisoformat(data["posted_at"]),
        sensitive=data["sensitive"],
        photos=(photo,),
    )
    return post, photo


# --- One album's fetch ---------------------------------------------------------------------


@dataclass
class _Job:
    post: Post
    photo: Photo
    status: str
    pending: PendingMedia | None = None  # a retry of an earlier failure


class _Downloads:
    """The download threads of one album's batch of photos, which a stop does not wait for.

    Daemon threads, unlike a ThreadPoolExecutor's (joined when it closes and when the process
    exits): a stop request (SIGTERM) leaves a download stalled by a slow host behind at once
    instead of waiting out its 30-second deadline (everhash/lib/safehttp.py). Its bytes are dropped;
    a download touches no database and no storage, so nothing is half-written. Photos not started
    when the stop came are not downloaded at all.
    """

    def __init__(self, *, workers: int, download: Callable[[Photo], bytes], stop: StopRequest) -> None:
        self._download = download
        self._stop = stop
        self._queue: queue.SimpleQueue[tuple[Photo, Future] | None] = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._work, name=f"download-{i}", daemon=True) for i in range(workers)]
        for thread in self._threads:
            thread.start()

    def __enter__(self) -> _Downloads:
        return self

    def __exit__(self, *exc_info) -> None:
        for _ in self._threads:
            self._queue.put(None)  # each thread ends after the downloads queued before it

    def submit(self, photo: Photo) -> Future:
        future: Future = Future()
        self._queue.put((photo, future))
        return future

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            photo, future = item
            if self._stop.requested:
                future.set_exception(Stopped())
                continue
            try:
                future.set_result(self._download(photo))
            except Exception as exc:  # handed to the fetch's thread, which decides
                future.set_exception(exc)


class _AlbumFetch:
    """The state of one album's fetch: counts, cursor progress, the signature index, known media keys."""

    def __init__(
        self,
        *,
        album: Album,
        source: Source,
        report: SourceReport,
        dry_run: bool,
        progress,
        run_state: RunState,
        run: FetchRun | None = None,
        stop: StopRequest | None = None,
    ) -> None:
        self.album = album
        self.source = source
        self.report = report
        self.dry_run = dry_run
        self.progress = progress
        self.run_state = run_state
        self.run = run  # the claim: renewed, with the counts so far, after every picture
        self.stop = stop or StopRequest()
        self.cursor: dict = {}  # cursor fields moved forward page by page; kept even when the run fails
        self.index = None if dry_run else load_signature_index(album=album)
        self.known = set(Picture.objects.filter(album=album, source=source.name).values_list("media_key", flat=True))
        # Photos waiting for another try are retried from PendingMedia, not downloaded again from a page.
        self.known |= set(
            PendingMedia.objects.waiting().filter(album=album, source=source.name).values_list("media_key", flat=True)
        )
        # Block lists, read once per album per run; photos a moderator deleted count as known.
        self.policy = Policy.for_album(album, source=source.name)
        self.known |= self.policy.deleted_media

    # -- talking to the source --------------------------------------------------------

    def search(self, **cursor) -> Page:
        before = self.source.requests_made
        try:
            with self.stop.abortable():
                return self.source.search(hashtag=self.album.search_term, **cursor)
        finally:
            # Every request counts, the failed ones and the retries too.
            self.report.requests += self.source.requests_made - before

    def walk(self, *, since_id: str | None, next_token: str | None, budget: int, top: bool) -> tuple[int, bool]:
        """Read pages from a cursor, older and older, within `since_id`, until the end or the budget.

        `top`: the walk starts at the newest post, so its first page gives the next `since_id`.
        The cursor moves after each page is processed: a later failure keeps the progress made, and
        an unfinished walk is continued by the next run under the same `since_id`.
        Returns (pages read, whether the walk reached its end).
        """
        pages = 0
        while pages < budget and not self.run_state.out_of_time():
            page = self.search(since_id=since_id, next_token=next_token)
            pages += 1
            self.process(page)
            out_of_requests = self.source_says_stop(page)
            if top and pages == 1 and page.newest_id:
                self.cursor["newest_post_id"] = page.newest_id
            next_token = page.next_token
            if next_token:
                self.cursor.update(backfill_token=next_token, backfill_since_id=since_id or "")
            else:
                self.cursor.update(backfill_token="", backfill_since_id="")
                if since_id is None:
                    self.cursor["backfill_done"] = True
                return pages, True
            if out_of_requests:
                break
        return pages, False

    def source_says_stop(self, page: Page) -> bool:
        """The source said this was the last request of its window (X's x-rate-limit-remaining: 0, or
        a Mastodon instance's or Bluesky's): pause it for every album until the reset rather than
        spend a request on a certain 429."""
        limit = page.rate_limit
        if limit.remaining != 0 or limit.reset_at is None or self.dry_run:
            return False
        label = self.source.label
        message = f"{label}'s rate limit is used up until {limit.reset_at:%H:%M} UTC; no request is made before then."
        pause_source(source=self.source.key, error=RateLimited(message, reset_at=limit.reset_at))
        return True

    # -- pages and photos --------------------------------------------------------------

    def process(self, page: Page) -> None:
        self.report.posts_seen += page.posts_read
        for skipped in page.skipped:
            self.report.skipped += 1
            self.record("", skipped.post_id, skipped.reason, skipped.message)
        jobs = []
        for post in page.posts:
            jobs += self.jobs_for(post)
        self.store(jobs)
        self.checkpoint()
        if self.progress:
            self.progress(self.report)

    def checkpoint(self) -> None:
        """Write the counts so far and renew the claim's lease; ClaimLost if another run took it over."""
        if self.run is None:
            return
        renewed = FetchRun.objects.filter(pk=self.run.pk, claim=self.album).update(
            lease_until=timezone.now() + CLAIM_LEASE, **_counts(self.report)
        )
        if not renewed:
            raise ClaimLost(f"#{self.album.hashtag}: another run took this album over after this run's lease expired.")

    def jobs_for(self, post: Post) -> list[_Job]:
        new_photos = [photo for photo in post.photos if photo.media_key not in self.known]
        if not new_photos:
            if not self.dry_run:
                # Seen again (a backfill walk): "popular" follows the latest like count.
                Picture.objects.filter(album=self.album, source=self.source.name, post_id=post.id).exclude(
                    like_count=post.like_count
                ).update(like_count=post.like_count)
            return []
        if self.dry_run:
            self.report.new_photos += len(new_photos)
            return []
        status = policy_status(album=self.album, post=post, policy=self.policy)
        if status is None:
            self.report.skipped += 1
            return []
        self.known.update(photo.media_key for photo in new_photos)
        return [_Job(post=post, photo=photo, status=status) for photo in new_photos]

    def retry_pending(self) -> None:
        """Try again the album's photos whose earlier downloads failed for a reason that may pass."""
        now = timezone.now()
        due = list(PendingMedia.objects.due(now).filter(album=self.album, source=self.source.name)[:200])
        jobs = []
        for pending in due:
            post, photo = _post_from_json(pending.post)
            status = policy_status(album=self.album, post=post, policy=self.policy)
            if status is None or photo.media_key in self.policy.deleted_media:
                self.finish_pending(pending, PendingMedia.State.GAVE_UP, "policy", "skipped by the album's policy")
                continue
            jobs.append(_Job(post=post, photo=photo, status=status, pending=pending))
        self.store(jobs)

    def store(self, jobs: list[_Job]) -> None:
        """Download the photos a few at a time, then store them one by one in post order (the database
        writes stay in this thread; newest first, so `credit_earliest` settles duplicates).

        After each picture the counts and the claim are saved (a killed run keeps them) and a stop
        request is honoured: the downloads in flight are abandoned, nothing is half-written.
        """
        if not jobs:
            return
        workers = max(1, settings.EVERHASH_FETCH_DOWNLOAD_CONCURRENCY)
        with _Downloads(workers=workers, download=self.download, stop=self.stop) as downloads:
            for start in range(0, len(jobs), workers * 2):  # at most 2 batches of bytes held in memory
                chunk = jobs[start : start + workers * 2]
                futures = [downloads.submit(job.photo) for job in chunk]
                for job, future in zip(chunk, futures, strict=True):
                    try:
                        with self.stop.abortable():  # waiting for bytes: nothing is being written
                            data = future.result()
                    except MediaError as exc:
                        self.failed(job, exc)
                    else:
                        self.ingest(job, data)
                    self.checkpoint()
                    if self.progress:
                        self.progress(self.report)

    def download(self, photo: Photo) -> bytes:
        """One photo's bytes (runs in a download thread: no database here)."""
        host = urlsplit(photo.url).hostname or ""
        if self.run_state.out_of_time():
            raise MediaError("the run's time budget was spent first", reason="run_budget", temporary=True)
        if self.run_state.hosts.is_open(host):
            raise MediaError(f"{host} kept failing in this run: skipped", reason="host_skipped", temporary=True)
        try:
            data = self.source.download(photo)
        except MediaError as exc:
            if exc.temporary:
                self.run_state.hosts.record(host, ok=False)
            raise
        self.run_state.hosts.record(host, ok=True)
        return data

    def ingest(self, job: _Job, data: bytes) -> None:
        post, photo = job.post, job.photo
        try:
            outcome = ingest_photo(
                album=self.album,
                source=self.source.name,
                post=post,
                photo=photo,
                data=data,
                index=self.index,
                status=job.status,
            )
        except (DatabaseError, StorageUnavailable):
            raise  # the database or the storage is down: the album fails and retries later
        except Exception as exc:
            # A bug met by one odd picture must not block the album's other pictures forever.
            logger.exception("#%s: could not store %s", self.album.hashtag, photo.media_key)
            self.reject(job, "internal", f"Internal error: {type(exc).__name__}: {exc}")
            return
        if outcome.kind == "rejected":
            self.reject(job, outcome.reason, outcome.message)
            return
        if outcome.kind == "added":
            self.report.added += 1
        else:
            self.report.duplicates += 1
            if outcome.duplicate_of is not None:
                credit_earliest(picture_id=outcome.duplicate_of, source=self.source.name, post=post, photo=photo)
        if job.pending is not None:
            self.report.retried += outcome.kind == "added"
            self.finish_pending(job.pending, PendingMedia.State.STORED, outcome.kind, outcome.message)

    def failed(self, job: _Job, exc: MediaError) -> None:
        """A download failed: a temporary failure waits for another try (until it ages out), a
        permanent one is final."""
        if not exc.temporary:
            self.reject(job, exc.reason, str(exc))
            return
        now = timezone.now()
        pending = job.pending
        if pending is None:
            pending, created = PendingMedia.objects.get_or_create(
                album=self.album,
                source=self.source.name,
                media_key=job.photo.media_key,
                defaults={
                    "post_id": job.post.id,
                    "url": job.photo.url,
                    "post": _post_json(job.post, job.photo),
                    "reason": exc.reason,
                    "message": str(exc)[:2000],
                    "next_attempt_at": now + retry_delay(1),
                },
            )
            if created:
                self.report.pending += 1
                self.record(job.photo.media_key, job.post.permalink, exc.reason, f"will try again: {exc}")
                return
        if now - pending.created >= timedelta(hours=settings.EVERHASH_MEDIA_RETRY_HOURS):
            message = f"gave up after {pending.attempts + 1} tries over {settings.EVERHASH_MEDIA_RETRY_HOURS} h: {exc}"
            self.reject(job, exc.reason, message)
            self.finish_pending(pending, PendingMedia.State.GAVE_UP, exc.reason, message)
            return
        self.report.pending += 1
        PendingMedia.objects.filter(pk=pending.pk).update(
            attempts=F("attempts") + 1,
            reason=exc.reason,
            message=str(exc)[:2000],
            next_attempt_at=now + retry_delay(pending.attempts + 1),
        )

    def finish_pending(self, pending: PendingMedia, state: str, reason: str, message: str) -> None:
        PendingMedia.objects.filter(pk=pending.pk).update(
            state=state, reason=reason[:40], message=message[:2000], finished=timezone.now()
        )

    def reject(self, job: _Job, reason: str, message: str) -> None:
        self.report.rejected += 1
        self.record(job.photo.media_key, job.post.permalink, reason, message)
        key, permalink = job.photo.media_key, job.post.permalink
        logger.info("#%s: rejected %s from %s: %s", self.album.hashtag, key, permalink, message)

    def record(self, media_key: str, post: str, reason: str, message: str) -> None:
        self.report.rejections.append({"media_key": media_key, "post": post, "reason": reason, "message": message})


def credit_earliest(*, picture_id: int, source: str, post: Post, photo: Photo) -> bool:
    """Credit a stored picture to `post` when `post` is an earlier posting of the same photo.

    The album's dedupe spans its sources, so a photo posted to X and to Mastodon is stored once
    and names the earliest post (its network, author, permalink and time), whichever copy arrived
    first: walks go newest first, and the networks are read one after another. The stored files
    stay (they are the same photo). A conditional update, so overlapping runs agree on the
    earliest. True when the credit moved.
    """
    earlier = Picture.objects.filter(pk=picture_id, posted_at__gt=post.posted_at)
    try:
        with transaction.atomic():
            moved = earlier.update(**credit(source=source, post=post, photo=photo))
    except IntegrityError:
        return False  # that post's photo is already another picture of the album: leave both alone
    if moved:
        picture = Picture.objects.only("album_id").get(pk=picture_id)
        logger.info("picture %s credited to the earlier %s", picture_id, post.permalink)
        pictures_changed(album_ids=[picture.album_id])
    return bool(moved)


def source_rows(*, album: Album, keys: Iterable[str], save: bool = True) -> dict[str, AlbumSource]:
    """The album's source rows by key, with a row (switched on) for each of `keys` it lacks.

    A new album is fed by every source of the run; a source configured later joins every album;
    one its owner switched off stays off. `save=False` (a dry run) leaves the new rows unsaved.
    """
    keys = list(keys)
    rows = {row.key: row for row in AlbumSource.objects.filter(album=album)}
    if missing := [key for key in keys if key not in rows]:
        new = [AlbumSource(album=album, key=key) for key in missing]
        if not save:
            return rows | {row.key: row for row in new}
        AlbumSource.objects.bulk_create(new, ignore_conflicts=True)
        rows = {row.key: row for row in AlbumSource.objects.filter(album=album)}
    return rows


def choose_album_sources(*, album: Album, offered: Iterable[str], enabled: Iterable[str]) -> None:
    """The owner's choice: of the `offered` sources, those in `enabled` feed the album, the others not."""
    offered = list(offered)
    chosen = set(enabled) & set(offered)
    source_rows(album=album, keys=offered)
    AlbumSource.objects.filter(album=album, key__in=chosen).update(enabled=True)
    AlbumSource.objects.filter(album=album, key__in=set(offered) - chosen).update(enabled=False)


def _not_asked(
    *,
    source: Source,
    row: AlbumSource,
    pause: SourcePause | None,
    now: datetime,
    forced: bool,
    refused: dict[str, str],
) -> SourceReport | None:
    """Why `source` is not asked for this album this time, as its report; None when it is asked.

    A pause (the source's app-wide rate limit or usage cap) and the album's own rate limit always
    hold; a back-off after failures holds unless an operator named the album (`--album`).
    """
    part = SourceReport(key=source.key, label=source.label)
    if source.key in refused:
        part.status, part.error, part.refused = "failed", refused[source.key], True
    elif pause is not None:
        part.status, part.error = "paused", pause.message
    elif row.rate_limited_until and row.rate_limited_until > now:
        part.status = "rate_limited"
        part.error = f"rate limited until {row.rate_limited_until:%H:%M} UTC"
    elif row.next_fetch_at and row.next_fetch_at > now and not forced:
        part.status = "backing_off"
        part.error = f"failed {row.failures} times in a row; asked again after {row.next_fetch_at:%H:%M} UTC"
    else:
        return None
    return part


def _take_claim(*, album: Album, source: str, now: datetime, backfill: bool) -> FetchRun | None:
    """A live FetchRun of `source` holding the album, or None when another run holds it (the unique
    `claim`). Taken by `claim_album` for the album's first source, then for each next source right
    after the previous one released it: another run (an operator's `--album`) may take it in between."""
    try:
        with transaction.atomic():
            return FetchRun.objects.create(
                album=album,
                source=source,
                started=now,
                backfill=backfill,
                claim=album,
                lease_until=now + CLAIM_LEASE,
                holder=holder_id()[:300],
            )
    except IntegrityError:
        return None


def fetch_album(
    *,
    album: Album,
    sources: list[Source],
    max_pages: int = DEFAULT_MAX_PAGES,
    backfill: bool = False,
    dry_run: bool = False,
    forced: bool = False,
    progress: Callable[[SourceReport], None] | None = None,
    run_state: RunState | None = None,
    stop: StopRequest | None = None,
    refused: dict[str, str] | None = None,
) -> AlbumReport:
    """Fetch one album's new posts from each of its sources and store their photos.

    `sources` are the run's (tweets.registry.run_sources); the album uses those its owner has
    not switched off, one after another, each under its own FetchRun (the album's claim passes
    from one to the next). Each source keeps its own state (tweets.AlbumSource): one that fails,
    is rate-limited or backs off never blocks the others. `refused` is shared by a run: a source
    whose credentials were refused is recorded there and not asked again for other albums.
    `forced` fetches the album even when it is not due (`--album`), its sources that back off
    too; a live claim is honoured all the same ("busy"). Never raises SourceError; a stop
    request ends it between pictures ("stopped"), each cursor where the next run continues.
    """
    now = timezone.now()
    run_state = run_state or RunState()
    refused = {} if refused is None else refused
    report = AlbumReport(hashtag=album.hashtag)
    sources = [source for source in sources if source.serves(album.hashtag)]
    rows = source_rows(album=album, keys=[source.key for source in sources], save=not dry_run)
    feeds = [(source, rows[source.key]) for source in sources if rows[source.key].enabled]
    if not feeds:
        report.status = "skipped"
        report.error = "No source feeds this album: its owner switched every one off, or none is configured."
        if not dry_run:  # said on its pages; asked again after the interval, in case a source is added
            Album.objects.filter(pk=album.pk).update(
                last_fetch_at=now, next_fetch_at=now + interval(), last_error=report.error, last_error_at=now
            )
        return report
    if dry_run:
        report.status = "dry_run"
        for source, row in feeds:
            report.add(
                _dry_run(
                    album=album,
                    source=source,
                    row=row,
                    max_pages=max_pages,
                    progress=progress,
                    run_state=run_state,
                    stop=stop,
                )
            )
        return report
    ready = []
    pauses = active_pauses(sources=[source.key for source, _ in feeds], now=now)
    for source, row in feeds:
        waiting = _not_asked(
            source=source, row=row, pause=pauses.get(source.key), now=now, forced=forced, refused=refused
        )
        if waiting is None:
            ready.append((source, row))
        else:
            report.add(waiting)
    if not ready:
        _settle(album=album, report=report, now=now, held=True)
        return report
    run = claim_album(album=album, source=ready[0][0].key, now=now, forced=forced, backfill=backfill)
    if run is None:
        report.status = "busy" if FetchRun.objects.filter(claim=album).exists() else "skipped"
        report.error = (
            describe_busy(album=album) if report.status == "busy" else "No longer due: another run fetched it."
        )
        return report

    held = True
    for source, row in ready:
        if run is None:
            run = _take_claim(album=album, source=source.key, now=timezone.now(), backfill=backfill)
        part = SourceReport(key=source.key, label=source.label)
        if run is None:
            held = False  # the other run fetches the rest, and owns the album's state
            part.status, part.error = "busy", describe_busy(album=album)
        else:
            held = _fetch_source(
                album=album,
                source=source,
                row=row,
                run=run,
                report=part,
                max_pages=max_pages,
                backfill=backfill,
                progress=progress,
                run_state=run_state,
                stop=stop,
            )
            run = None
        if part.refused:
            refused[source.key] = part.error
        report.add(part)
        if not held or part.status == "stopped":
            break
    _settle(album=album, report=report, now=now, held=held)
    album.refresh_from_db()
    if report.added and report.status == "stopped":
        record_milestones(album=album)  # announced by the next run's end-of-round chores
    elif report.added:
        report.milestones_sent = update_milestones(album=album)
    return report


def _fetch_source(
    *,
    album: Album,
    source: Source,
    row: AlbumSource,
    run: FetchRun,
    report: SourceReport,
    max_pages: int,
    backfill: bool,
    progress,
    run_state: RunState,
    stop: StopRequest | None,
) -> bool:
    """One source's pages for one album under `run`, which it closes, and the source's state row
    saved. Never raises SourceError. False when another run took the album over meanwhile."""
    fetch = _AlbumFetch(
        album=album,
        source=source,
        report=report,
        dry_run=False,
        progress=progress,
        run_state=run_state,
        run=run,
        stop=stop,
    )
    state: dict = {}
    try:
        fetch.retry_pending()
        _fetch_pages(fetch=fetch, row=row, max_pages=max_pages, backfill=backfill)
    except AuthFailed as exc:
        # Not the album's fault: no back-off, asked again as soon as the credentials are fixed.
        report.status, report.error, report.refused = "failed", str(exc), True
    except Stopped:
        report.status = "stopped"
    except ClaimLost as exc:
        # The run that took the album over owns its state now; this one's row is closed already.
        report.status = "failed"
        report.error = str(exc)
        return False
    except RateLimited as exc:
        # The source's limit, not the album's: every album waits for it (a pause), this one too.
        pause_source(source=source.key, error=exc)
        report.status = "paused" if isinstance(exc, UsageCapped) else "rate_limited"
        report.error = str(exc)
        state["rate_limited_until"] = exc.reset_at
    except SourceError as exc:
        # The source failed, said in plain words: it keeps its cursor and backs off on its own.
        report.status = "failed"
        report.error = str(exc)
        logger.warning("#%s (%s): %s", album.hashtag, source.label, report.error)
        state.update(_failed(row=row))
    except (StorageUnavailable, DatabaseError) as exc:
        # Not the source's fault: the album backs off as a whole (_settle), the source does not.
        report.status = "failed"
        report.error = failure_message(exc)
        logger.warning("#%s (%s): %s", album.hashtag, source.label, report.error)
    except Exception as exc:
        # A bug or an unexpected failure with one source must not stop the others.
        logger.exception("#%s: fetch from %s failed", album.hashtag, source.label)
        report.status = "failed"
        report.error = f"Internal error: {type(exc).__name__}: {exc}"
        state.update(_failed(row=row))
    except BaseException:
        # Ctrl-C or an exit mid-fetch: release the album now, not when the lease runs out.
        report.status = "interrupted"
        report.error = "Interrupted: the process stopped."
        if _finish(run=run, row=row, report=report, state=fetch.cursor):
            Album.objects.filter(pk=album.pk).update(next_fetch_at=timezone.now())
        raise
    else:
        state.update(failures=0, next_fetch_at=None, last_success_at=timezone.now(), rate_limited_until=None)
    # The cursor keeps every page processed, whatever happened after: no failed run moves it back.
    return _finish(run=run, row=row, report=report, state={**fetch.cursor, **state})


def _settle(*, album: Album, report: AlbumReport, now: datetime, held: bool) -> None:
    """The album's status and state from its sources': it is due again after the interval when a
    source worked, and otherwise when the first of its sources may be asked again (its back-off
    after failures, or its rate limit's reset), and not before its own back-off when every source
    asked failed (a storage or database outage backs the album off, not its sources)."""
    parts = report.sources
    worked = [part for part in parts if part.status == "ok"]
    # Refused credentials are the operator's to fix (the command's exit code 3), not the album's failure.
    failed = [part for part in parts if part.status == "failed" and not part.refused]
    problems = "; ".join(part.describe() for part in parts if part.status not in ("ok", "backing_off"))
    if len(parts) == 1:
        report.status, report.error = parts[0].status, parts[0].error
    elif worked:
        report.status = "partial" if failed else "ok"
        report.error = problems
    else:
        order = ("interrupted", "stopped", "failed", "rate_limited", "paused", "busy", "backing_off")
        report.status = next(status for status in order if any(part.status == status for part in parts))
        report.error = problems or "; ".join(part.describe() for part in parts)
    if not held:
        return  # another run took the album over: its state is that run's
    state: dict = {"last_error": problems[:2000]}
    if problems:
        state["last_error_at"] = timezone.now()
    if any(part.status in ("stopped", "interrupted") for part in parts):
        state["next_fetch_at"] = timezone.now()  # the next run continues at once
    elif worked:
        state.update(failures=0, next_fetch_at=timezone.now() + interval(), last_success_at=timezone.now())
    else:
        wait = interval()
        if failed:
            state["failures"] = F("failures") + 1
            wait = backoff(album.failures + 1)  # the storage or the database failed: the album backs off
        state["next_fetch_at"] = max(now + wait, _first_ask(album=album, keys=[part.key for part in parts]))
    # Each stored picture already marked the collage stale (pictures_changed); likes may have
    # changed even when nothing was added, so cached pages and ETags move on too.
    Album.objects.filter(pk=album.pk).bump_version(collage_stale=False, last_fetch_at=timezone.now(), **state)


def _first_ask(*, album: Album, keys: list[str]) -> datetime:
    """When the first of these sources of the album may be asked again: after its back-off, its
    rate limit and its pause; now for one that waits for none (refused credentials)."""
    now = timezone.now()
    pauses = dict(SourcePause.objects.filter(source__in=keys, until__gt=now).values_list("source", "until"))
    times = []
    for row in AlbumSource.objects.filter(album=album, key__in=keys):
        waits = [row.next_fetch_at, row.rate_limited_until, pauses.get(row.key)]
        times.append(max([now, *(moment for moment in waits if moment is not None)]))
    return min(times, default=now)


def failure_message(exc: BaseException) -> str:
    """An album's failure in plain words: what failed, what it means, no stack trace."""
    if isinstance(exc, StorageUnavailable):
        return f"The media storage failed; nothing was stored for the pictures concerned and they are retried: {exc}"
    if isinstance(exc, DatabaseError):
        return f"The database is locked or unreachable ({type(exc).__name__}: {exc}); the album is retried."
    return str(exc)


def _failed(*, row: AlbumSource) -> dict:
    """A source's state after a failed fetch: back off, keep the cursor (the error is saved with the result)."""
    return {"failures": F("failures") + 1, "next_fetch_at": timezone.now() + backoff(row.failures + 1)}


def fetch_due_album(*, album_id: int, sources: list[Source], max_pages: int = DEFAULT_MAX_PAGES) -> AlbumReport | None:
    """Fetch one album if it is still due, then build its collage if that went stale.

    None when the album is no longer due (a duplicate task, or another runner fetched it first):
    nothing was done. The claim in `fetch_album` settles a runner arriving between the two.
    """
    album = Album.objects.due().filter(pk=album_id).first()
    if album is None:
        return None
    report = fetch_album(album=album, sources=sources, max_pages=max_pages)
    build_stale_collages(albums=Album.objects.filter(pk=album.pk, collage_stale=True))
    return report


def finish_round(*, collages_built_elsewhere: Iterable[int] = (), stop: StopRequest | None = None) -> BuildSummary:
    """What ends every round of fetches (the command's run, Celery's dispatch).

    Milestone emails that failed earlier (SMTP down...) are sent again, and the stale collages are
    built, except those of `collages_built_elsewhere` (albums whose own fetch task builds them).
    A stop request ends it between two collages (Stopped); the rest stay stale for the next run.
    """
    announce_pending_milestones()
    stale = Album.objects.filter(collage_stale=True).exclude(pk__in=list(collages_built_elsewhere))
    check = (lambda result: stop.check()) if stop is not None else None
    return build_stale_collages(albums=stale.order_by("pk"), report=check)


def _fetch_pages(*, fetch: _AlbumFetch, row: AlbumSource, max_pages: int, backfill: bool) -> None:
    """An album's walks through one source for this run, within `max_pages`, from that source's cursors.

    1. An unfinished walk (more pages than an earlier run's budget) is finished first, under the
       `since_id` it started with: the posts it still has to read are older than the newest read,
       and no post already read comes back.
    2. Then what is newer than the newest post read (`since_id`), or the whole search window on
       the first run. Only X's stale-`since_id` answer resets that cursor.
    """
    budget = max_pages
    if backfill:
        # Walk the whole search window again from the top (like counts for "popular").
        fetch.walk(since_id=None, next_token=None, budget=budget, top=True)
        return
    if row.backfill_token:
        since = row.backfill_since_id or None
        try:
            used, finished = fetch.walk(since_id=since, next_token=row.backfill_token, budget=budget, top=False)
        except StaleCursor:
            logger.info("#%s: the unfinished walk's since_id %s is too old; dropping it", row.album.hashtag, since)
            fetch.cursor.update(backfill_token="", backfill_since_id="")
            used, finished = 1, True
        budget -= used
        if not finished or budget <= 0:
            return
    newest = row.newest_post_id or None
    try:
        fetch.walk(since_id=newest, next_token=None, budget=budget, top=True)
    except StaleCursor:
        logger.info(
            "#%s: since_id %s is older than the search window; starting from the newest", row.album.hashtag, newest
        )
        if budget > 1:
            # Everything X still has is newer than the stale cursor: none of it was read. Should this
            # walk fail, the stale cursor stays (a failed run never clears a cursor).
            fetch.walk(since_id=None, next_token=None, budget=budget - 1, top=True)
        fetch.cursor.setdefault("newest_post_id", "")


_RUN_STATUS = {
    "ok": FetchRun.Status.OK,
    "failed": FetchRun.Status.FAILED,
    "rate_limited": FetchRun.Status.RATE_LIMITED,
    "paused": FetchRun.Status.PAUSED,
    "stopped": FetchRun.Status.STOPPED,
    "interrupted": FetchRun.Status.INTERRUPTED,
}


def _counts(report: Counts) -> dict:
    return {
        "requests_made": report.requests,
        "posts_seen": report.posts_seen,
        "pictures_added": report.added,
        "duplicates": report.duplicates,
        "rejected": report.rejected,
        "skipped": report.skipped,
        "rejections": report.rejections[:200],
    }


def _finish(*, run: FetchRun, row: AlbumSource, report: SourceReport, state: dict) -> bool:
    """Close the run and release its claim, then save the source's state (only while the claim
    held: False when another run took the album over)."""
    now = timezone.now()
    closed = FetchRun.objects.filter(pk=run.pk, claim_id=row.album_id).update(
        finished=now, status=_RUN_STATUS[report.status], claim=None, error=report.error[:5000], **_counts(report)
    )
    if not closed:
        logger.warning("#%s: this run's claim was taken over; its results are not saved", row.album.hashtag)
        return False
    AlbumSource.objects.filter(pk=row.pk).update(
        last_fetch_at=now,
        last_status=report.status,
        last_posts=report.posts_seen,
        last_added=report.added,
        last_error=report.error[:2000],
        **state,
    )
    return True


def _dry_run(
    *,
    album: Album,
    source: Source,
    row: AlbumSource,
    max_pages: int,
    progress,
    run_state: RunState,
    stop: StopRequest | None,
) -> SourceReport:
    report = SourceReport(key=source.key, label=source.label, status="dry_run")
    fetch = _AlbumFetch(
        album=album, source=source, report=report, dry_run=True, progress=progress, run_state=run_state, stop=stop
    )
    try:
        if row.backfill_token:
            since = row.backfill_since_id or None
            fetch.walk(since_id=since, next_token=row.backfill_token, budget=max_pages, top=False)
        else:
            fetch.walk(since_id=row.newest_post_id or None, next_token=None, budget=max_pages, top=True)
    except SourceError as exc:
        report.error = str(exc)
    except Stopped:
        report.error = "Stopped on request."
    return report
