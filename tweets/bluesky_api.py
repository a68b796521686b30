"""Bluesky post search through the atproto SDK: the only module that imports `atproto`.

Post search needs a signed-in account since January 2025 (bluesky-social/atproto issue 3423), so
this source is on only when EVERHASH_BLUESKY_HANDLE and EVERHASH_BLUESKY_APP_PASSWORD are set.
`com.atproto.server.createSession` is tightly rate-limited, so the session is signed in once and
kept in the database (`tweets.models.BlueskySession`): later runs import it, the SDK refreshes it
with the refresh token before the access token expires, and everhash signs in again only when the
refresh fails (or the service refuses the session).

`app.bsky.feed.searchPosts` is searched with `tag`, `sort=latest`, `limit=100` and its opaque
`cursor`. It has no `since_id`: the cursor for newer posts is the newest `sortAt` seen (the time
search sorts by, min(createdAt, indexedAt)), sent as `since`, and polling stops at the first post
that is not newer. A post back-dated behind that cursor is not seen: search itself files it there.
Bluesky asks that searchPosts serve human-directed search, not bulk collection: poll at the album
interval, honour `ratelimit-*`, and see docs/sources.md for how a Jetstream consumer would take
over for busy hashtags.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol
from urllib.parse import quote, urlsplit

import httpcore
import httpx
from atproto import Client, SessionEvent
from atproto_client import models
from atproto_client.exceptions import (
    BadRequestError,
    InvokeTimeoutError,
    LoginRequiredError,
    NetworkError,
    RateLimitExceededError,
    RequestErrorBase,
    UnauthorizedError,
)
from atproto_client.request import Request
from atproto_core.exceptions import AtProtocolError
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

from albums.hashtags import normalize_hashtag
from everhash.lib.deadline import Deadline
from everhash.lib.safehttp import tls_context
from tweets.models import BlueskySession
from tweets.sources import (
    AuthFailed,
    Page,
    Photo,
    Post,
    RateLimit,
    RateLimited,
    Retry,
    SourceError,
    believable_reset,
    download_photo,
    source_label,
    stable_media_key,
)

logger = logging.getLogger(__name__)

PAGE_SIZE = 100  # searchPosts' maximum
PERMALINK = "https://bsky.app/profile/{handle}/post/{rkey}"
IMAGES_VIEW = "app.bsky.embed.images#view"
RECORD_WITH_MEDIA_VIEW = "app.bsky.embed.recordWithMedia#view"
# Labels (by moderation services or the author) that hide media behind a warning on Bluesky.
SENSITIVE_LABELS = frozenset({"porn", "sexual", "nudity", "graphic-media", "gore"})
# Bluesky's rate-limit windows are 5 minutes; createSession's are longer.
DEFAULT_RATE_LIMIT_WAIT = timedelta(minutes=5)
# Errors that mean "this session is no good": refreshing failed or the service refused it.
SESSION_ERRORS = frozenset({"ExpiredToken", "InvalidToken", "AuthenticationRequired", "AuthMissing"})


class SessionStore(Protocol):
    def load(self) -> str | None: ...

    def save(self, session: str) -> None: ...


class DatabaseSessionStore:
    """The session string of one account at one service, in a BlueskySession row."""

    def __init__(self, *, api_url: str, handle: str) -> None:
        self.api_url, self.handle = api_url, handle

    def load(self) -> str | None:
        rows = BlueskySession.objects.filter(api_url=self.api_url, handle=self.handle)
        return rows.values_list("session", flat=True).first()

    def save(self, session: str) -> None:
        BlueskySession.objects.update_or_create(
            api_url=self.api_url, handle=self.handle, defaults={"session": session, "updated": timezone.now()}
        )


def _time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _sort_at(post: models.AppBskyFeedDefs.PostView) -> datetime | None:
    """When search ranks the post under sort=latest: its creation time, never later than indexing."""
    indexed = _time(post.indexed_at)
    created = _time(getattr(post.record, "created_at", None))
    times = [moment for moment in (indexed, created) if moment is not None]
    return min(times) if times else None


def _images(embed: object) -> list:
    """The image views of a post's embed: images#view, or the media part of recordWithMedia#view."""
    kind = getattr(embed, "py_type", None)
    if kind == RECORD_WITH_MEDIA_VIEW:
        return _images(getattr(embed, "media", None))
    if kind == IMAGES_VIEW:
        return list(getattr(embed, "images", None) or [])
    return []  # video, external links, quoted posts without media


def _sensitive(post: models.AppBskyFeedDefs.PostView) -> bool:
    values = {label.val for label in post.labels or [] if not getattr(label, "neg", False)}
    self_labels = getattr(post.record, "labels", None)
    values |= {item.val for item in getattr(self_labels, "values", None) or []}
    return bool(values & SENSITIVE_LABELS)


def parse_post(post: models.AppBskyFeedDefs.PostView) -> Post | None:
    """A Post with the post's images, or None when it has none (or cannot be dated)."""
    images = _images(post.embed)
    posted_at = _time(getattr(post.record, "created_at", None)) or _time(post.indexed_at)
    if not images or posted_at is None or not post.uri:
        return None
    photos = []
    for position, image in enumerate(images):
        ratio = getattr(image, "aspect_ratio", None)
        photos.append(
            Photo(
                media_key=stable_media_key(post.uri, str(position)),
                url=image.fullsize,
                width=max(int(getattr(ratio, "width", 0) or 0), 0),
                height=max(int(getattr(ratio, "height", 0) or 0), 0),
                alt_text=image.alt or "",
            )
        )
    handle = post.author.handle
    return Post(
        id=post.uri,
        permalink=PERMALINK.format(handle=quote(handle, safe=""), rkey=quote(post.uri.rsplit("/", 1)[-1], safe="")),
        author_handle=handle,
        author_name=post.author.display_name or handle,
        text=str(getattr(post.record, "text", "") or ""),
        like_count=max(post.like_count or 0, 0),
        posted_at=posted_at,
        sensitive=_sensitive(post),
        photos=tuple(photos),
    )


def _error_name(exc: RequestErrorBase) -> str:
    content = getattr(exc.response, "content", None)
    return str(getattr(content, "error", "") or "")


def _error_detail(exc: RequestErrorBase) -> str:
    content = getattr(exc.response, "content", None)
    return str(getattr(content, "message", "") or getattr(content, "error", "") or exc)


class _WatchedStream(httpcore.NetworkStream):
    """httpcore's stream, handing its socket to the open `Deadline` before every operation (a
    kept-alive connection serves several requests, each under its own deadline)."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def _watch(self) -> None:
        Deadline.watch(self._stream.get_extra_info("socket"))

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        self._watch()
        return self._stream.read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._watch()
        self._stream.write(buffer, timeout)

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context, server_hostname=None, timeout=None) -> httpcore.NetworkStream:  # type: ignore[no-untyped-def]
        self._watch()  # the TLS handshake is inside the deadline too
        return _WatchedStream(self._stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str):  # type: ignore[no-untyped-def]
        return self._stream.get_extra_info(info)


class _WatchedBackend(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self._backend = httpcore.SyncBackend()

    def connect_tcp(self, *args, **kwargs) -> httpcore.NetworkStream:  # type: ignore[no-untyped-def]
        return _WatchedStream(self._backend.connect_tcp(*args, **kwargs))

    def connect_unix_socket(self, *args, **kwargs) -> httpcore.NetworkStream:  # type: ignore[no-untyped-def]
        return _WatchedStream(self._backend.connect_unix_socket(*args, **kwargs))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


class _DeadlineTransport(httpx.HTTPTransport):
    """httpx's transport (same arguments) whose connections obey `everhash.lib.deadline.Deadline`:
    httpx's timeouts bound each read, not the whole answer (docs/fetching.md, "Time limits")."""

    def __init__(self, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(**kwargs)
        # httpcore's pools (its proxy pools are subclasses) take a network backend; httpx does not
        # pass one through, so it is set on the pool httpx built, before any connection is made.
        self._pool._network_backend = _WatchedBackend()


class BlueskySource:
    """Bluesky's post search for one account, with a kept session and plain-English errors."""

    name = "bluesky"  # pictures.models.Source.BLUESKY

    def __init__(
        self,
        *,
        api_url: str,
        handle: str,
        app_password: str,
        store: SessionStore,
        ca_bundle: str | None = None,
        timeout: float = 20,
        deadline: float = 60,
        max_retries: int = 2,
        sleep: Callable[[float], None] = time.sleep,
        backoff_base: float = 1.0,
        backoff_cap: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        api_url = (api_url or "").strip().rstrip("/")
        parts = urlsplit(api_url)
        if parts.scheme != "https" or not parts.netloc:
            raise SourceError(f"EVERHASH_BLUESKY_API_URL must be an https:// address, not {api_url!r}.")
        if not handle or not app_password:
            raise AuthFailed("Bluesky needs EVERHASH_BLUESKY_HANDLE and EVERHASH_BLUESKY_APP_PASSWORD.")
        self.api_url = api_url
        self.key = f"bluesky:{parts.netloc.lower()}"
        self.label = source_label(self.key)  # the service's host
        self.handle = handle
        self._password = app_password
        self.store = store
        self.timeout = timeout
        self.deadline = deadline
        self._expired = False  # whether the last request ran out of its deadline
        rng = rng or random.Random()  # noqa: S311 - retry jitter, not security
        self.retry = Retry(max_retries=max_retries, base=backoff_base, cap=backoff_cap, sleep=sleep, rng=rng)
        self._signed_in = False
        self._exhausted_until: datetime | None = None
        self._count = 0
        self._last_headers: httpx.Headers = httpx.Headers()
        request = Request(
            transport=_DeadlineTransport(verify=tls_context(ca_bundle)),
            timeout=timeout,
            headers={"User-Agent": "everhash"},
            event_hooks={"request": [self._on_request], "response": [self._on_response]},
        )
        self._client = Client(base_url=api_url, request=request)
        self._client.on_session_change(self._on_session_change)

    @classmethod
    def from_settings(cls) -> BlueskySource:
        return cls(
            api_url=settings.EVERHASH_BLUESKY_API_URL,
            handle=settings.EVERHASH_BLUESKY_HANDLE,
            app_password=settings.EVERHASH_BLUESKY_APP_PASSWORD,
            store=DatabaseSessionStore(
                api_url=settings.EVERHASH_BLUESKY_API_URL, handle=settings.EVERHASH_BLUESKY_HANDLE
            ),
            ca_bundle=settings.EVERHASH_CA_BUNDLE or None,
            deadline=settings.EVERHASH_SOURCE_DEADLINE_SECONDS,
        )

    def __repr__(self) -> str:
        return f"<BlueskySource {self.handle} at {self.api_url}>"  # never the password

    @property
    def requests_made(self) -> int:
        """Every HTTP request so far (sign-in and refresh, failed ones and retries included)."""
        return self._count

    # -- transport hooks and session ---------------------------------------------

    def _on_request(self, request: httpx.Request) -> None:
        self._count += 1
        self._last_headers = httpx.Headers()

    def _on_response(self, response: httpx.Response) -> None:
        self._last_headers = response.headers

    def _on_session_change(self, event: SessionEvent, session) -> None:
        if event in (SessionEvent.CREATE, SessionEvent.REFRESH):
            self.store.save(session.export())
            logger.info(
                "Bluesky: %s the session of %s", "created" if event == SessionEvent.CREATE else "refreshed", self.handle
            )

    def _sign_in(self) -> None:
        """Use the kept session; sign in with the app password only when there is none."""
        if self._signed_in:
            return
        stored = self.store.load()
        if stored:
            try:
                self._client.login(session_string=stored, fetch_bsky_profile=False)
            except (ValueError, AtProtocolError) as exc:
                logger.warning("Bluesky: the kept session of %s is unusable (%s); signing in again", self.handle, exc)
            else:
                self._signed_in = True
                return
        self._create_session()

    def _create_session(self) -> None:
        try:
            self._call(lambda: self._client.login(self.handle, self._password, fetch_bsky_profile=False))
        except AuthFailed as exc:
            raise AuthFailed(
                f"{self.label}: could not sign in as {self.handle} ({exc}): "
                "check EVERHASH_BLUESKY_HANDLE and EVERHASH_BLUESKY_APP_PASSWORD."
            ) from exc
        self._signed_in = True

    # -- search ------------------------------------------------------------------

    def search(self, *, hashtag: str, since_id: str | None = None, next_token: str | None = None) -> Page:
        try:
            tag = normalize_hashtag(hashtag)
        except ValidationError:
            raise SourceError(f"{hashtag!r} is not a hashtag Bluesky can search for.") from None
        since = _time(since_id) if since_id else None
        if since_id and since is None:
            raise SourceError(f"The Bluesky cursor {since_id!r} is not a date; starting from the newest.")
        if self._exhausted_until and self._exhausted_until > timezone.now():
            raise self._rate_limited(self._exhausted_until, what="search")
        params = models.AppBskyFeedSearchPosts.Params(
            q=f"#{tag}",
            tag=[tag],
            sort="latest",
            limit=PAGE_SIZE,
            cursor=next_token or None,
            since=_iso(since) if since else None,
        )
        self._sign_in()
        try:
            response = self._call(lambda: self._client.app.bsky.feed.search_posts(params=params))
        except AuthFailed:
            # The session was refused, or refreshing it failed: sign in again, once.
            logger.info("Bluesky: the session of %s was refused; signing in again", self.handle)
            self._signed_in = False
            self._create_session()
            response = self._call(lambda: self._client.app.bsky.feed.search_posts(params=params))

        rate_limit = self._rate_limit()
        if rate_limit.remaining == 0 and rate_limit.reset_at:
            self._exhausted_until = rate_limit.reset_at
        posts: list[Post] = []
        newest: datetime | None = None
        reached_seen = False
        for view in response.posts or []:
            sort_at = _sort_at(view)
            if sort_at is None:
                continue
            if since is not None and sort_at <= since:
                reached_seen = True  # the newest post already seen, or older: polling stops here
                continue
            newest = max(newest, sort_at) if newest else sort_at
            post = parse_post(view)
            if post is not None:
                posts.append(post)
        more = bool(response.cursor) and bool(response.posts) and not reached_seen
        return Page(
            posts=posts,
            newest_id=_iso(newest) if newest else None,
            next_token=response.cursor if more else None,
            rate_limit=rate_limit,
            posts_read=len(response.posts or []),
        )

    def _call(self, request: Callable):
        """Run one SDK call, retrying transport failures and 5xx answers; translate every failure.

        The SDK wraps timeouts and network errors, but lets protocol errors (a server hanging up
        without an answer) through as httpx's own.
        """
        errors = (AtProtocolError, ValueError, httpx.TransportError)

        def within_deadline():
            self._expired = False
            with Deadline(self.deadline) as deadline:
                try:
                    return request()
                finally:
                    self._expired = deadline.expired

        return self.retry.run(
            within_deadline, errors=errors, translate=self._translate, what=f"Bluesky at {self.label}"
        )

    def _rate_limit(self) -> RateLimit:
        headers = self._last_headers

        def number(name: str) -> int | None:
            try:
                return int(headers.get(name, ""))
            except ValueError:
                return None

        reset = number("ratelimit-reset")
        return RateLimit(
            limit=number("ratelimit-limit"),
            remaining=number("ratelimit-remaining"),
            reset_at=datetime.fromtimestamp(reset, tz=UTC) if reset is not None and 0 < reset < 2**40 else None,
        )

    def _rate_limited(self, reset_at: datetime | None, *, what: str) -> RateLimited:
        reset_at = believable_reset(reset_at, default=DEFAULT_RATE_LIMIT_WAIT)
        return RateLimited(
            f"{self.label}'s {what} rate limit is used up until {reset_at:%H:%M} UTC; no request is made before then.",
            reset_at=reset_at,
        )

    def _translate(self, exc: Exception) -> tuple[SourceError, bool]:
        """The SourceError for an SDK failure, and whether another attempt is worth it."""
        if isinstance(exc, RateLimitExceededError):
            self._exhausted_until = believable_reset(exc.reset_at, default=DEFAULT_RATE_LIMIT_WAIT)
            what = "sign-in" if not self._signed_in else "search"
            return self._rate_limited(self._exhausted_until, what=what), False
        if isinstance(exc, LoginRequiredError):
            return AuthFailed("the session has no usable tokens"), False
        if isinstance(exc, UnauthorizedError) or (
            isinstance(exc, BadRequestError) and _error_name(exc) in SESSION_ERRORS
        ):
            return AuthFailed(_error_detail(exc)), False
        if self._expired and isinstance(exc, NetworkError | httpx.TransportError):
            return SourceError(
                f"{self.label} did not finish answering within {self.deadline:g} seconds; will try again later."
            ), True
        if isinstance(exc, InvokeTimeoutError):
            return SourceError(
                f"{self.label} did not answer within {self.timeout:g} seconds; will try again later."
            ), True
        if isinstance(exc, NetworkError) and exc.response is not None:  # 409, 413, 502
            return SourceError(f"{self.label} is having trouble (it answered {exc.response.status_code})."), True
        if isinstance(exc, NetworkError | httpx.TransportError):
            if isinstance(exc.__cause__, httpx.ConnectError) and "CERTIFICATE" in str(exc.__cause__).upper():
                settings_names = "EVERHASH_BLUESKY_API_URL and EVERHASH_CA_BUNDLE"
                message = f"Could not verify {self.label}'s HTTPS certificate: check {settings_names}."
                return SourceError(message), False
            return SourceError(f"Could not reach {self.label} (the connection failed); will try again later."), True
        if isinstance(exc, RequestErrorBase) and exc.response is not None:
            status = exc.response.status_code
            if status >= 500:
                return SourceError(
                    f"{self.label} is having trouble (it answered {status}); will try again later."
                ), True
            return SourceError(f"{self.label} rejected the search ({status}: {_error_detail(exc)})."), False
        # Model errors (a page the SDK could not read), undecodable JSON.
        logger.warning("Bluesky: unreadable answer: %r", exc)
        return SourceError(f"{self.label} sent an answer that could not be read; retrying on the next run."), False

    # -- download --------------------------------------------------------------

    def serves(self, hashtag: str) -> bool:
        return True  # any hashtag

    def download(self, photo: Photo) -> bytes:
        """The photo's bytes from Bluesky's CDN (or any public host), through the guard."""
        return download_photo(photo.url, any_public_host=True)


def bluesky_configured() -> bool:
    return bool(settings.EVERHASH_BLUESKY_HANDLE and settings.EVERHASH_BLUESKY_APP_PASSWORD)
