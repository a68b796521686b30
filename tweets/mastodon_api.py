"""Mastodon hashtag timelines through Mastodon.py: the only module that imports `mastodon`.

One `MastodonSource` per configured instance (EVERHASH_MASTODON_INSTANCES). An instance's
hashtag timeline (`GET /api/v1/timelines/tag/:hashtag`) holds only the statuses that have
reached it, so several instances see more; a status federated to two of them is one post, whose
identity is its `uri` (the same everywhere), while its `id` is local to each instance and only
serves as that instance's cursor.

Paging follows Mastodon's: newest first, `since_id` for newer statuses, `max_id` (the `Link`
header's rel="next", which Mastodon sends only after a full page) for older ones. Mastodon.py
runs with `ratelimit_method="throw"`: waiting is the scheduler's business, not a worker's, so a
429 becomes `RateLimited` with the reset time from `Retry-After` or `X-RateLimit-Reset` (ISO 8601).
"""

from __future__ import annotations

import html
import logging
import random
import re
import time
import warnings
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.html import strip_tags
from mastodon import (
    Mastodon,
    MastodonAPIError,
    MastodonError,
    MastodonNetworkError,
    MastodonNotFoundError,
    MastodonRatelimitError,
    MastodonServerError,
    MastodonUnauthorizedError,
)
from mastodon.errors import MastodonWarning

from albums.hashtags import normalize_hashtag
from everhash.lib.deadline import Deadline, DeadlineAdapter
from everhash.lib.safehttp import combined_ca_bundle
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
    header_int,
    non_negative_int,
    source_label,
    stable_media_key,
)

logger = logging.getLogger(__name__)

PAGE_SIZE = 40  # the most a Mastodon timeline returns per request
# Mastodon's API rate limit window is 5 minutes (300 requests per account or address).
DEFAULT_RATE_LIMIT_WAIT = timedelta(minutes=5)
_BREAKS = re.compile(r"<br\s*/?>|</p>\s*<p[^>]*>", re.IGNORECASE)


def status_text(content: object) -> str:
    """Plain text from a status's HTML `content` (paragraphs and line breaks kept as new lines)."""
    if not isinstance(content, str):
        return ""
    return html.unescape(strip_tags(_BREAKS.sub("\n", content))).strip()


def _dict(value: object) -> dict:
    return value if isinstance(value, dict) else {}


def _time(value: object) -> datetime | None:
    """An aware datetime from `created_at` (Mastodon.py hands over datetimes; raw ISO strings too)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    # Mastodon.py converts to the machine's local zone: store UTC like every other date.
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def parse_statuses(statuses: object, *, domain: str) -> list[Post]:
    """Posts from a hashtag timeline page: statuses with at least one `image` attachment.

    `gifv`, `video`, `audio` and `unknown` attachments are left out; boosts are skipped (the
    timeline should not contain them, and a boost must not credit the booster). A status that
    cannot be read (no `uri`, no account, an unreadable date) is skipped, not the whole page.
    Local accounts have an `acct` without a domain: the instance's `domain` is added, so an
    author is `user@instance` whichever instance the status was read from.
    """
    # Mastodon.py casts whatever came to the declared list type (a JSON object becomes the list of
    # its keys), so the items are checked too: a page the cursor cannot trust must fail, not pass empty.
    if not isinstance(statuses, list) or not all(isinstance(status, dict) for status in statuses):
        raise SourceError("The Mastodon instance sent something that is not a list of statuses.")
    posts: list[Post] = []
    for status in statuses:
        if status.get("reblog"):
            continue
        uri = status.get("uri")
        account = _dict(status.get("account"))
        acct = str(account.get("acct") or "").lstrip("@")
        posted_at = _time(status.get("created_at"))
        if not isinstance(uri, str) or not uri or not acct or posted_at is None:
            logger.warning("Skipping an unreadable status from %s: %r", domain, status.get("id"))
            continue
        handle = acct if "@" in acct else f"{acct}@{domain}"
        photos = []
        attachments = status.get("media_attachments")
        for position, attachment in enumerate(attachments if isinstance(attachments, list) else []):
            attachment = _dict(attachment)
            url = attachment.get("url") or attachment.get("remote_url")
            if attachment.get("type") != "image" or not isinstance(url, str) or not url:
                continue
            original = _dict(_dict(attachment.get("meta")).get("original"))
            photos.append(
                Photo(
                    media_key=stable_media_key(uri, str(position)),
                    url=url,
                    width=non_negative_int(original.get("width")),
                    height=non_negative_int(original.get("height")),
                    alt_text=str(attachment.get("description") or ""),
                )
            )
        if not photos:
            continue
        posts.append(
            Post(
                id=uri,
                permalink=str(status.get("url") or uri),
                author_handle=handle,
                author_name=str(account.get("display_name") or account.get("username") or handle),
                text=status_text(status.get("content")),
                like_count=non_negative_int(status.get("favourites_count")),
                posted_at=posted_at,
                # A content warning hides the media behind a click on Mastodon: treat it as sensitive.
                sensitive=bool(status.get("sensitive")) or bool(str(status.get("spoiler_text") or "").strip()),
                photos=tuple(photos),
            )
        )
    return posts


def _iso_time(value: object) -> datetime | None:
    return _time(value.strip()) if isinstance(value, str) else None


def _retry_after(value: object) -> datetime | None:
    """The moment a `Retry-After` header (seconds, or an HTTP date) points to."""
    if not isinstance(value, str) or not value.strip():
        return None
    seconds = header_int(value)
    if seconds is not None:
        return timezone.now() + timedelta(seconds=max(seconds, 0))
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class _RecordingSession(requests.Session):
    """A requests session that counts requests, keeps the last response's headers and gives each
    request a total deadline (`expired` says whether the last one ran out of it).

    Mastodon.py reads the rate-limit headers for its own pacing but does not hand them out,
    nor `Retry-After`; the adapter needs both to tell the scheduler when to come back. Its
    `request_timeout` is requests' per-read timeout, which a trickling server never trips.
    """

    def __init__(self, *, deadline: float) -> None:
        super().__init__()
        self.count = 0
        self.deadline = deadline
        self.expired = False
        self.last_headers: requests.structures.CaseInsensitiveDict = requests.structures.CaseInsensitiveDict()
        self.mount("https://", DeadlineAdapter())

    def request(self, *args, **kwargs):  # type: ignore[override]
        # Passed per request, `verify` wins over REQUESTS_CA_BUNDLE from the environment, which
        # would otherwise replace the session's (and so EVERHASH_CA_BUNDLE) without a word.
        kwargs.setdefault("verify", self.verify)
        self.count += 1
        self.last_headers = requests.structures.CaseInsensitiveDict()
        self.expired = False
        with Deadline(self.deadline) as deadline:
            try:
                response = super().request(*args, **kwargs)
            finally:
                self.expired = deadline.expired
        if self.expired:  # the body arrived whole just as the timer fired: still too slow
            raise requests.exceptions.ConnectionError(f"the {self.deadline:g}-second deadline ran out")
        self.last_headers = response.headers
        return response


class MastodonSource:
    """One Mastodon instance's hashtag timeline, with retries and plain-English errors."""

    name = "mastodon"  # pictures.models.Source.MASTODON: one network, however many instances

    def __init__(
        self,
        *,
        base_url: str,
        access_token: str = "",
        ca_bundle: str | None = None,
        timeout: float = 20,
        deadline: float = 60,
        max_retries: int = 2,
        sleep: Callable[[float], None] = time.sleep,
        backoff_base: float = 1.0,
        backoff_cap: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        base_url = (base_url or "").strip().rstrip("/")
        parts = urlsplit(base_url)
        if parts.scheme != "https" or not parts.netloc:
            raise SourceError(f"A Mastodon instance must be an https:// address, not {base_url!r}.")
        self.base_url = base_url
        self.domain = parts.netloc.lower()  # host[:port], as `acct` names remote accounts
        self.key = f"mastodon:{self.domain}"
        self.label = source_label(self.key)  # the domain
        self.has_token = bool(access_token)
        self.timeout = timeout
        rng = rng or random.Random()  # noqa: S311 - retry jitter, not security
        self.retry = Retry(max_retries=max_retries, base=backoff_base, cap=backoff_cap, sleep=sleep, rng=rng)
        self._exhausted_until: datetime | None = None
        self._session = _RecordingSession(deadline=deadline)
        self._session.verify = ca_bundle or True
        self._client = Mastodon(
            api_base_url=base_url,
            access_token=access_token or None,
            ratelimit_method="throw",
            request_timeout=timeout,
            session=self._session,
            version_check_mode="none",
            user_agent="everhash",
        )

    @classmethod
    def from_settings(cls, base_url: str) -> MastodonSource:
        domain = urlsplit(base_url).netloc.lower()
        hostname = (urlsplit(base_url).hostname or "").lower()
        tokens = settings.EVERHASH_MASTODON_TOKENS
        return cls(
            base_url=base_url,
            access_token=tokens.get(domain) or tokens.get(hostname) or "",
            # EVERHASH_CA_BUNDLE adds authorities; requests' verify= would replace certifi's.
            ca_bundle=combined_ca_bundle(settings.EVERHASH_CA_BUNDLE) if settings.EVERHASH_CA_BUNDLE else None,
            deadline=settings.EVERHASH_SOURCE_DEADLINE_SECONDS,
        )

    def __repr__(self) -> str:
        return f"<MastodonSource {self.base_url}>"  # never the token

    @property
    def requests_made(self) -> int:
        """Every HTTP request so far (the instance check, failed ones and retries included)."""
        return self._session.count

    # -- search ----------------------------------------------------------------

    def search(self, *, hashtag: str, since_id: str | None = None, next_token: str | None = None) -> Page:
        try:
            tag = normalize_hashtag(hashtag)
        except ValidationError:
            raise SourceError(f"{hashtag!r} is not a hashtag Mastodon can search for.") from None
        if self._exhausted_until and self._exhausted_until > timezone.now():
            # The last answer said the budget is spent: asking again would only earn a 429.
            raise self._rate_limited(self._exhausted_until)
        params: dict = {"only_media": True, "limit": PAGE_SIZE}
        if since_id:
            params["since_id"] = str(since_id)
        if next_token:
            params["max_id"] = str(next_token)

        def timeline():
            with warnings.catch_warnings():
                # Mastodon.py warns when /api/v2/instance says the feed needs a signed-in app;
                # the request itself then tells us (401/422), with a message that names the setting.
                warnings.simplefilter("ignore", MastodonWarning)
                return self._client.timeline_hashtag(tag, **params)

        statuses = self.retry.run(
            timeline, errors=(MastodonError,), translate=self._translate, what=f"{self.domain} #{tag}"
        )
        rate_limit = self._rate_limit()
        if rate_limit.remaining == 0 and rate_limit.reset_at:
            self._exhausted_until = rate_limit.reset_at
        posts = parse_statuses(statuses, domain=self.domain)
        newest = statuses[0].get("id") if statuses else None
        pagination = getattr(statuses, "_pagination_next", None) or {}
        older = pagination.get("max_id") if isinstance(pagination, dict) else None
        page = Page(
            posts=posts,
            newest_id=str(newest) if newest else None,
            next_token=str(older) if older and statuses else None,
            rate_limit=rate_limit,
            posts_read=len(statuses),
        )
        return page

    def _rate_limit(self) -> RateLimit:
        headers = self._session.last_headers
        return RateLimit(
            limit=header_int(headers.get("X-RateLimit-Limit")),
            remaining=header_int(headers.get("X-RateLimit-Remaining")),
            reset_at=_iso_time(headers.get("X-RateLimit-Reset")),
        )

    def _rate_limited(self, reset_at: datetime | None) -> RateLimited:
        reset_at = believable_reset(reset_at, default=DEFAULT_RATE_LIMIT_WAIT)
        return RateLimited(
            f"{self.domain}'s rate limit is used up until {reset_at:%H:%M} UTC; no request is made before then.",
            reset_at=reset_at,
        )

    def _translate(self, exc: MastodonError) -> tuple[SourceError, bool]:
        """The SourceError for a Mastodon.py failure, and whether another attempt is worth it."""
        headers = self._session.last_headers
        # Mastodon.py's API errors carry (message, status, reason, error); its JSON errors do not.
        status = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else None
        if isinstance(exc, MastodonRatelimitError) or status == 429:
            reset_at = _retry_after(headers.get("Retry-After")) or _iso_time(headers.get("X-RateLimit-Reset"))
            self._exhausted_until = believable_reset(reset_at, default=DEFAULT_RATE_LIMIT_WAIT)
            return self._rate_limited(self._exhausted_until), False
        if isinstance(exc, MastodonUnauthorizedError) or status in (401, 422):
            if self.has_token:
                message = f"{self.domain} refused the token given in EVERHASH_MASTODON_TOKENS ({status})."
            else:
                message = (
                    f"{self.domain} shows hashtag timelines only to signed-in apps ({status}): "
                    f"add {self.domain}=<access token> to EVERHASH_MASTODON_TOKENS."
                )
            return AuthFailed(message), False
        if isinstance(exc, MastodonNotFoundError):
            return SourceError(
                f"{self.domain} has no Mastodon hashtag timeline (404): check EVERHASH_MASTODON_INSTANCES."
            ), False
        if isinstance(exc, MastodonServerError):
            return SourceError(f"{self.domain} is having trouble (it answered {status}); will try again later."), True
        if isinstance(exc, MastodonNetworkError):
            if self._session.expired:
                return SourceError(
                    f"{self.domain} did not finish answering within {self._session.deadline:g} seconds; "
                    "will try again later."
                ), True
            cause = exc.__context__
            if isinstance(cause, requests.exceptions.SSLError):
                settings_names = "EVERHASH_MASTODON_INSTANCES and EVERHASH_CA_BUNDLE"
                message = f"Could not verify {self.domain}'s HTTPS certificate: check {settings_names}."
                return SourceError(message), False
            if isinstance(cause, requests.exceptions.Timeout):
                return SourceError(
                    f"{self.domain} did not answer within {self.timeout:g} seconds; will try again later."
                ), True
            return SourceError(f"Could not reach {self.domain} (the connection failed); will try again later."), True
        if isinstance(exc, MastodonAPIError) and status is None:
            # Mastodon.py's "Could not parse response as JSON" carries no status code.
            return SourceError(f"{self.domain} sent a response that is not valid JSON."), False
        if status is not None:
            return SourceError(f"{self.domain} rejected the hashtag request ({status})."), False
        logger.warning("%s: Mastodon request failed: %r", self.domain, exc)
        return SourceError(f"The search on {self.domain} failed unexpectedly."), False

    # -- download --------------------------------------------------------------

    def serves(self, hashtag: str) -> bool:
        return True  # any hashtag

    def download(self, photo: Photo) -> bytes:
        """The photo's bytes from wherever the instance stores it: any public host, through the guard."""
        return download_photo(photo.url, any_public_host=True)


def mastodon_sources() -> list[MastodonSource]:
    """A source for each configured instance (none when EVERHASH_MASTODON_INSTANCES is empty)."""
    return [MastodonSource.from_settings(url) for url in settings.EVERHASH_MASTODON_INSTANCES]
