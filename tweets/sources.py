"""Where posts come from: the interface every source implements.

A source answers one question: "give me a page of posts with photos for this
hashtag, newer than this cursor or older than that one". The ingestion service
(tweets/services.py) knows nothing else about X, the sample data or any future
source: X (tweets/x_api.py), Mastodon (tweets/mastodon_api.py), Bluesky
(tweets/bluesky_api.py) and the bundled sample (tweets/sample.py) each implement `Source`.

This module is the interface only and imports no source: choosing one is tweets/registry.py's
job, so the sources import this module and never the other way round.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol, TypeVar

from django.utils import timezone

from everhash.lib.safehttp import DownloadError, download_image

logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Photo:
    media_key: str
    url: str
    width: int
    height: int
    alt_text: str = ""


@dataclass(frozen=True)
class Post:
    id: str
    permalink: str
    author_handle: str
    author_name: str
    text: str
    like_count: int
    posted_at: datetime
    sensitive: bool
    photos: tuple[Photo, ...]


@dataclass(frozen=True)
class RateLimit:
    limit: int | None = None
    remaining: int | None = None
    reset_at: datetime | None = None


@dataclass(frozen=True)
class Skipped:
    """A post the source returned but that cannot be stored, with the reason (recorded, never fatal)."""

    post_id: str
    reason: str  # a short code, e.g. "author_missing"
    message: str


@dataclass(frozen=True)
class Page:
    """One page of results, newest first.

    `newest_id` is the newest post id on the page (the next `since_id` when
    polling); `next_token` continues to older posts (None when there are no more).
    `posts_read` counts every post the source returned (X bills each one), including
    those dropped here (no photo, a retweet) and those in `skipped`.
    """

    posts: list[Post]
    newest_id: str | None = None
    next_token: str | None = None
    rate_limit: RateLimit = field(default_factory=RateLimit)
    posts_read: int = 0
    skipped: tuple[Skipped, ...] = ()


class SourceError(Exception):
    """A source could not answer. The message is shown to owners: plain words."""


class RateLimited(SourceError):
    """The source said stop until `reset_at`. It limits the whole app, not one album: the run
    stops asking it (a circuit breaker) and so do later runs until then."""

    def __init__(self, message: str, *, reset_at: datetime) -> None:
        super().__init__(message)
        self.reset_at = reset_at


class UsageCapped(RateLimited):
    """The account's usage cap is spent (X's `UsageCapExceeded`): no request can succeed before
    `reset_at`, the earliest time the cap's period can end."""


class AuthFailed(SourceError):
    """The credentials were refused, or the plan cannot search: no album can be fetched, the run stops."""


class StaleCursor(SourceError):
    """The `since_id` is too old for the source's search window: reset the cursor."""


class MediaError(SourceError):
    """One photo could not be downloaded: skip it, keep the rest. `reason` is a short code.

    `temporary` failures (a timeout, a dropped connection, a 5xx or 429) are tried again by
    later runs; the others (404, 410, content that is not a usable image) are final.
    """

    def __init__(self, message: str, *, reason: str = "download", temporary: bool = False) -> None:
        super().__init__(message)
        self.reason = reason
        self.temporary = temporary


class Source(Protocol):
    name: str  # a pictures.models.Source value: the network, which identities (posts, authors) belong to
    key: str  # this source among the deployment's (tweets.registry): "x", "mastodon:mastodon.social"...
    label: str  # what owners read: "X", "mastodon.social"
    requests_made: int  # every HTTP request so far, failed ones and retries included

    def search(self, *, hashtag: str, since_id: str | None = None, next_token: str | None = None) -> Page:
        """A page of posts with photos for `hashtag`.

        With `since_id`: posts newer than it (polling). With `next_token`: the
        next older page. With neither: the newest page.
        """
        ...

    def download(self, photo: Photo) -> bytes:
        """The photo's original bytes. Raises MediaError."""
        ...

    def serves(self, hashtag: str) -> bool:
        """Whether this source is asked for `hashtag` at all (the sample: its demo hashtags only)."""
        ...


# A reset time further away than this is not believed (a broken header must not park an album for years).
MAX_RATE_LIMIT_WAIT = timedelta(hours=24)


def believable_reset(reset_at: datetime | None, *, default: timedelta) -> datetime:
    """`reset_at` when it is a sane moment (within a day of now), else now + `default`."""
    now = timezone.now()
    if reset_at is None or not (now - MAX_RATE_LIMIT_WAIT <= reset_at <= now + MAX_RATE_LIMIT_WAIT):
        return now + default
    return reset_at


@dataclass
class Retry:
    """Runs a client call again after transient failures, with exponential back-off and full jitter.

    `translate` turns the client's exception into the SourceError to raise and says whether
    another attempt is worth it (timeouts, dropped connections, 5xx: yes; 4xx, 429: never).
    """

    max_retries: int = 2
    base: float = 1.0
    cap: float = 30.0
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int) -> float:
        """Seconds before retry number `attempt` (0-based): uniform in [0, min(cap, base * 2**attempt)]."""
        return self.rng.uniform(0, min(self.cap, self.base * 2**attempt))

    def run(
        self,
        call: Callable[[], T],
        *,
        errors: tuple[type[Exception], ...],
        translate: Callable[[Exception], tuple[SourceError, bool]],
        what: str,
    ) -> T:
        attempts = 0
        while True:
            attempts += 1
            try:
                return call()
            except errors as exc:
                error, retryable = translate(exc)
                if not retryable or attempts > self.max_retries:
                    logger.warning("%s failed after %d attempt(s): %s", what, attempts, error)
                    raise error from exc
                delay = self.delay(attempts - 1)
                logger.info("%s failed (%s); retrying in %.1fs", what, error, delay)
                self.sleep(delay)


def non_negative_int(value: object) -> int:
    """A count from an API's answer (likes, a photo's width): 0 when absent, negative or malformed."""
    try:
        return max(int(value or 0), 0)  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError):
        return 0


def header_int(value: object) -> int | None:
    """An integer HTTP header (rate-limit counts and resets), None when absent or malformed."""
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def source_label(key: str) -> str:
    """What owners read for a source key: "X", "Sample posts", or the instance or service
    ("mastodon.social", "bsky.social" for `mastodon:mastodon.social`, `bluesky:bsky.social`)."""
    return {"x": "X", "sample": "Sample posts"}.get(key) or key.partition(":")[2] or key


def stable_media_key(*parts: str) -> str:
    """A short, stable media key from what identifies a photo on its network.

    Mastodon and Bluesky identify posts by long URIs; a photo is the post's URI plus its place
    in the post, the same on every instance the post reached.
    """
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:40]


# Download failures worth another try later: the host or the network, not the content.
TEMPORARY_REASONS = {"timeout", "connection", "dns", "tls"}
TEMPORARY_STATUSES = {408, 425, 429, 500, 502, 503, 504}


def is_temporary(exc: DownloadError) -> bool:
    if exc.reason in TEMPORARY_REASONS:
        return True
    return exc.reason == "http_status" and exc.status in TEMPORARY_STATUSES


def download_photo(url: str, *, any_public_host: bool = False) -> bytes:
    """A photo's bytes through everhash/lib/safehttp.py's guard, every network source's `download`.

    A failure is a MediaError, temporary when the host or the network failed (one rule decides
    what is worth a retry). `any_public_host`: see download_image.
    """
    try:
        return download_image(url, any_public_host=any_public_host)
    except DownloadError as exc:
        raise MediaError(str(exc), reason=exc.reason, temporary=is_temporary(exc)) from exc
