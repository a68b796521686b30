"""The X API v2 adapter: the only module that knows X's payloads (and imports twython).

`parse_search_response` turns a v2 recent-search payload into a `Page`; it is
shared by the X source and the bundled sample source, whose recorded pages have
the same shape.

`XSource` searches X through twython 3.9.1. Twython speaks v1.1 natively; v2 is
reached through `Twython.request()` with a full https URL, which twython uses
verbatim (a relative path would get `.json` appended) while its requests session
adds `Authorization: Bearer <token>` (requests-oauthlib's OAuth2 auth, which
also refuses anything but https).
"""

from __future__ import annotations

import html
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import requests
import requests.adapters
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone
from twython import Twython, TwythonAuthError, TwythonError, TwythonRateLimitError

from albums.hashtags import hashtag_as_written
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
    Skipped,
    SourceError,
    StaleCursor,
    UsageCapped,
    believable_reset,
    download_photo,
    header_int,
    non_negative_int,
    source_label,
)

logger = logging.getLogger(__name__)

PERMALINK = "https://x.com/{handle}/status/{id}"
SEARCH_PATH = "/2/tweets/search/recent"
QUERY = "#{hashtag} has:images -is:retweet"
SEARCH_FIELDS = {
    "max_results": "100",
    "expansions": "attachments.media_keys,author_id",
    "media.fields": "url,type,width,height,alt_text,preview_image_url",
    "tweet.fields": "created_at,public_metrics,attachments,author_id,possibly_sensitive,referenced_tweets",
    "user.fields": "username,name",
}
# When a 429 carries no usable reset time: X's rate-limit windows are 15 minutes.
DEFAULT_RATE_LIMIT_WAIT = timedelta(minutes=15)


# --- Parsing -----------------------------------------------------------------


def _original_url(url: str) -> str:
    """The original-size variant of a pbs.twimg.com photo URL (`name=orig`).

    Both URL styles are handled: `.../media/ABC.jpg` (and its legacy
    `.../ABC.jpg:large` form) and `.../media/ABC?format=jpg&name=small`, whose
    `format` must survive or the URL stops working.
    """
    parts = urlsplit(url)
    path = parts.path
    head, _, last = path.rpartition("/")
    if ":" in last and "." in last.split(":", 1)[0]:
        path = f"{head}/{last.split(':', 1)[0]}"
    query = [(key, value) for key, value in parse_qsl(parts.query, keep_blank_values=True) if key != "name"]
    query.append(("name", "orig"))
    return urlunsplit((parts.scheme, parts.netloc, path, urlencode(query), ""))


def _parse_time(value: object) -> datetime | None:
    """An aware datetime from X's ISO 8601 `created_at`, or None when unreadable."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def _dict(value: object) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list:
    return value if isinstance(value, list) else []


def _newest_id(meta: dict, items: list[dict]) -> str | None:
    """`meta.newest_id`, or the largest post id on the page when X left it out (ids grow with time)."""
    newest = meta.get("newest_id")
    if newest:
        return str(newest)
    ids = [int(item["id"]) for item in items if str(item.get("id", "")).isdigit()]
    return str(max(ids)) if ids else None


def _missing_resources(payload: dict) -> dict[str, str]:
    """X's partial `errors` on a 200 answer (an author or a media item it could not return),
    as {resource id: X's own detail}."""
    missing = {}
    for error in _list(payload.get("errors")):
        error = _dict(error)
        resource = error.get("resource_id") or error.get("value")
        if resource is not None:
            missing[str(resource)] = str(error.get("detail") or error.get("title") or "not returned by X")
    return missing


def parse_search_response(payload: object, *, rate_limit: RateLimit | None = None) -> Page:
    """A Page from a v2 search payload: photos only, joined with their media and authors.

    A page whose posts come without any `includes`, and no partial `errors` saying why, raises
    SourceError (the cursor must not move past posts we could not read).

    Posts without photos, videos and GIF previews are dropped; retweets are
    dropped (the query excludes them; this guards against a retweet slipping
    through and being credited to the retweeter). A post whose author is missing from
    `includes.users` (X explains it in a partial `errors` entry: a suspended or protected
    account), or whose date cannot be read, is skipped with its reason in `Page.skipped`:
    one odd post must not block an album forever. `posts_read` counts every post returned.
    """
    if not isinstance(payload, dict):
        raise SourceError("The API sent something that is not a JSON object.")
    meta = _dict(payload.get("meta"))
    includes = _dict(payload.get("includes"))
    media_by_key = {m.get("media_key"): m for m in _list(includes.get("media")) if isinstance(m, dict)}
    users_by_id = {str(u.get("id")): u for u in _list(includes.get("users")) if isinstance(u, dict)}
    missing = _missing_resources(payload)
    items = [item for item in _list(payload.get("data")) if isinstance(item, dict)]
    with_media = [item for item in items if _list(_dict(item.get("attachments")).get("media_keys"))]
    if with_media and not (media_by_key and users_by_id) and not missing:
        # Without `includes` every post would be skipped and the cursor would move
        # past them for good: fail the page instead, so a later run fetches it again.
        raise SourceError("X sent posts without their media and authors (no 'includes'); retrying on the next run.")

    posts: list[Post] = []
    skipped: list[Skipped] = []
    for item in items:
        if not item.get("id"):
            continue
        post_id = str(item["id"])
        if any(_dict(ref).get("type") == "retweeted" for ref in _list(item.get("referenced_tweets"))):
            continue
        photos = _photos(item, media_by_key)
        if not photos:
            continue
        author_id = str(item.get("author_id"))
        author = users_by_id.get(author_id)
        if not author or not author.get("username"):
            why = missing.get(author_id, f"X did not send author {author_id} with the post")
            skipped.append(Skipped(post_id=post_id, reason="author_missing", message=why))
            continue
        posted_at = _parse_time(item.get("created_at"))
        if posted_at is None:
            message = f"unreadable created_at {item.get('created_at')!r}"
            skipped.append(Skipped(post_id=post_id, reason="bad_date", message=message))
            continue
        handle = str(author["username"])
        posts.append(
            Post(
                id=post_id,
                permalink=PERMALINK.format(handle=quote(handle, safe=""), id=quote(post_id, safe="")),
                author_handle=handle,
                author_name=str(author.get("name") or handle),
                # X sends &, < and > in post text as HTML entities; templates escape again.
                text=html.unescape(str(item.get("text") or "")),
                like_count=non_negative_int(_dict(item.get("public_metrics")).get("like_count")),
                posted_at=posted_at,
                sensitive=bool(item.get("possibly_sensitive")),
                photos=tuple(photos),
            )
        )
    next_token = meta.get("next_token")
    return Page(
        posts=posts,
        newest_id=_newest_id(meta, items),
        next_token=str(next_token) if next_token else None,
        rate_limit=rate_limit or RateLimit(),
        posts_read=len(items),
        skipped=tuple(skipped),
    )


def _photos(item: dict, media_by_key: dict) -> list[Photo]:
    photos = []
    seen_keys = set()
    for key in _list(_dict(item.get("attachments")).get("media_keys")):
        media = media_by_key.get(key)
        if key in seen_keys or not media or media.get("type") != "photo" or not media.get("url"):
            continue
        seen_keys.add(key)
        photos.append(
            Photo(
                media_key=str(key),
                url=_original_url(str(media["url"])),
                width=non_negative_int(media.get("width")),
                height=non_negative_int(media.get("height")),
                alt_text=str(media.get("alt_text") or ""),
            )
        )
    return photos


# --- The X source ------------------------------------------------------------


def _epoch(value: object) -> datetime | None:
    """An aware UTC datetime from an epoch-seconds header value (twython hands these over as strings)."""
    seconds = header_int(value)
    if seconds is None:
        return None
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def usage_period_end(period: str, now: datetime) -> datetime:
    """The earliest time a usage cap of this `period` ("Daily", "Monthly") can end: the next UTC
    day or month. X does not say when an account's billing cycle starts; an operator who buys
    more credits before then resumes fetching with `fetch_tweets --resume`."""
    now = now.astimezone(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period.strip().lower() == "daily":
        return midnight + timedelta(days=1)
    first = midnight.replace(day=1)
    return (first + timedelta(days=32)).replace(day=1)


@dataclass(frozen=True)
class Problem:
    """X's explanation of a failed request (its "problem" JSON: title, detail, type, reason, errors)."""

    status: int
    title: str = ""
    detail: str = ""
    type: str = ""
    reason: str = ""
    period: str = ""
    registration_url: str = ""
    errors: tuple[dict, ...] = ()

    @classmethod
    def from_body(cls, status: int, text: str) -> Problem:
        try:
            body = json.loads(text or "")
        except ValueError:
            body = None
        body = _dict(body)
        errors = tuple(_dict(error) for error in _list(body.get("errors")))
        return cls(
            status=status,
            title=_text(body.get("title")),
            detail=_text(body.get("detail")),
            type=_text(body.get("type")),
            reason=_text(body.get("reason")),
            period=_text(body.get("period")),
            registration_url=_text(body.get("registration_url")),
            errors=errors,
        )

    def words(self) -> str:
        """X's own words, e.g. "403 Client Forbidden: When authenticating ... (client-not-enrolled)"."""
        parts = [str(self.status), self.title]
        text = " ".join(part for part in parts if part)
        messages = [_text(error.get("message") or error.get("detail")) for error in self.errors]
        detail = "; ".join(m for m in [self.detail, *messages] if m)
        if detail and detail != self.title:
            text += f": {detail}"
        if self.reason:
            text += f" ({self.reason})"
        return text

    @property
    def usage_capped(self) -> bool:
        return self.title == "UsageCapExceeded" or self.type.endswith("/usage-capped")

    @property
    def stale_since_id(self) -> bool:
        """X's answer to a `since_id` older than its search window, and nothing else: an error on
        the `since_id` parameter saying the id must be newer than a date."""
        for error in self.errors:
            message = _text(error.get("message")).lower()
            if "since_id" in _dict(error.get("parameters")) and "created after" in message:
                return True
        return False


def _text(value: object) -> str:
    return value.strip()[:1000] if isinstance(value, str) else ""


class XSource:
    """X API v2 recent search through twython, with retries, a total deadline and X's own words."""

    name = "x"  # pictures.models.Source.X
    key = "x"  # tweets.registry: one X account per deployment
    label = source_label(key)

    def __init__(
        self,
        *,
        base_url: str,
        bearer_token: str,
        ca_bundle: str | None = None,
        timeout: float = 20,
        deadline: float = 60,
        max_retries: int = 3,
        sleep: Callable[[float], None] = time.sleep,
        backoff_base: float = 1.0,
        backoff_cap: float = 60.0,
        rng: random.Random | None = None,
    ) -> None:
        base_url = (base_url or "").strip().rstrip("/")
        if not base_url.startswith("https://"):
            # twython refuses plain http (and requests-oauthlib would not send the token over it).
            raise SourceError(f"EVERHASH_X_API_URL must be an https:// address, not {base_url!r}.")
        if not bearer_token:
            raise AuthFailed("No X bearer token is configured: set EVERHASH_X_BEARER_TOKEN.")
        self.base_url = base_url
        self.timeout = timeout
        self.deadline = deadline
        self.requests_made = 0
        rng = rng or random.Random()  # noqa: S311 - retry jitter, not security
        self.retry = Retry(max_retries=max_retries, base=backoff_base, cap=backoff_cap, sleep=sleep, rng=rng)
        self._client = Twython(
            access_token=bearer_token,
            client_args={
                "timeout": timeout,
                "verify": ca_bundle or True,
                "headers": {"User-Agent": "everhash"},
            },
        )
        self._client.client.mount("https://", DeadlineAdapter())

    @classmethod
    def from_settings(cls) -> XSource:
        return cls(
            base_url=settings.EVERHASH_X_API_URL,
            bearer_token=settings.EVERHASH_X_BEARER_TOKEN,
            # EVERHASH_CA_BUNDLE adds authorities; requests' verify= would replace certifi's.
            ca_bundle=combined_ca_bundle(settings.EVERHASH_CA_BUNDLE) if settings.EVERHASH_CA_BUNDLE else None,
            deadline=settings.EVERHASH_SOURCE_DEADLINE_SECONDS,
        )

    def __repr__(self) -> str:
        return f"<XSource {self.base_url}>"  # never the token

    # -- search ----------------------------------------------------------------

    def search(self, *, hashtag: str, since_id: str | None = None, next_token: str | None = None) -> Page:
        """A page of posts. `hashtag` is searched as written (`#Straße`, not its case-folded key)."""
        try:
            tag = hashtag_as_written(hashtag)
        except ValidationError:
            raise SourceError(f"{hashtag!r} is not a hashtag X can search for.") from None
        params = {"query": QUERY.format(hashtag=tag), **SEARCH_FIELDS}
        if since_id:
            params["since_id"] = str(since_id)
        if next_token:
            params["next_token"] = str(next_token)

        url = f"{self.base_url}{SEARCH_PATH}"
        expired = False

        def request():
            nonlocal expired
            self.requests_made += 1
            self._client._last_call = None  # a transport failure leaves no answer behind
            with Deadline(self.deadline) as deadline:
                try:
                    payload = self._client.request(url, params=params)
                finally:
                    expired = deadline.expired
            if expired:
                raise TwythonError("the total deadline ran out")
            return payload

        def translate(exc: Exception) -> tuple[SourceError, bool]:
            return self._translate(exc, expired=expired)  # type: ignore[arg-type]

        payload = self.retry.run(request, errors=(TwythonError,), translate=translate, what=f"X search for #{tag}")
        if isinstance(payload, str | bytes):
            raise SourceError("X sent a response that is not valid JSON.")
        return parse_search_response(payload, rate_limit=self._rate_limit())

    def _rate_limit(self) -> RateLimit:
        header = self._client.get_lastfunction_header
        return RateLimit(
            limit=header_int(header("x-rate-limit-limit")),
            remaining=header_int(header("x-rate-limit-remaining")),
            reset_at=_epoch(header("x-rate-limit-reset")),
        )

    def _problem(self, code: int) -> Problem:
        last = self._client._last_call or {}
        return Problem.from_body(code, str(last.get("content") or ""))

    def _translate(self, exc: TwythonError, *, expired: bool = False) -> tuple[SourceError, bool]:
        """The SourceError to raise for a twython failure, and whether another attempt is worth it.

        Only 5xx answers, timeouts and dropped connections are retried; a 429
        never is (the reset time is handed to the caller), nor is any other 4xx.
        Messages carry X's own title and detail.
        """
        if expired:
            return SourceError(f"X did not finish answering within {self.deadline:g} seconds; will try again."), True
        code = exc.error_code
        if code is not None:
            problem = self._problem(code)
            if isinstance(exc, TwythonRateLimitError) or code == 429:
                if problem.usage_capped:
                    return self._usage_capped(problem), False
                # twython's retry_after is the raw x-rate-limit-reset header: epoch seconds, as a string.
                return self._rate_limited(getattr(exc, "retry_after", None)), False
            if code == 401 or isinstance(exc, TwythonAuthError):
                message = f"X refused the bearer token ({problem.words()}): check EVERHASH_X_BEARER_TOKEN."
                return AuthFailed(message), False
            if code == 403:
                message = f"X refused the search ({problem.words()})."
                if problem.reason == "client-not-enrolled":
                    message += " The token is valid, but its app's plan or project cannot use recent search"
                    message += f": see {problem.registration_url}." if problem.registration_url else "."
                return AuthFailed(message), False
            if code == 400 and problem.stale_since_id:
                return StaleCursor(f"X no longer searches that far back ({problem.words()})."), False
            if code >= 500:
                return SourceError(f"X is having trouble ({problem.words()}); will try again."), True
            logger.warning("X rejected the search: %s", problem.words())
            return SourceError(f"X rejected the search ({problem.words()})."), False
        # No status code: twython either wrapped a requests exception (a transport failure) or
        # could not decode the body. Both are raised inside an `except`, so the original is the context.
        cause = exc.__context__
        if isinstance(cause, ValueError) or "not valid JSON" in str(exc):
            return SourceError("X sent a response that is not valid JSON."), False
        if isinstance(cause, requests.exceptions.SSLError):
            message = "Could not verify X's HTTPS certificate: check EVERHASH_X_API_URL and EVERHASH_CA_BUNDLE."
            return SourceError(message), False
        if isinstance(cause, requests.exceptions.Timeout):
            return SourceError(f"X did not answer within {self.timeout:g} seconds; will try again later."), True
        if isinstance(cause, requests.exceptions.ConnectionError | requests.exceptions.ChunkedEncodingError):
            return SourceError("Could not reach X (the connection failed); will try again later."), True
        logger.warning("X search failed: %r", exc)
        return SourceError("The X search failed unexpectedly."), False

    def _rate_limited(self, reset_header: object) -> RateLimited:
        reset_at = believable_reset(_epoch(reset_header), default=DEFAULT_RATE_LIMIT_WAIT)
        return RateLimited(
            f"X's rate limit is used up until {reset_at:%H:%M} UTC; no request is made before then.",
            reset_at=reset_at,
        )

    def _usage_capped(self, problem: Problem) -> UsageCapped:
        reset_at = usage_period_end(problem.period or "Monthly", timezone.now())
        return UsageCapped(
            f"X's usage cap is spent ({problem.words()}): all X fetching is paused until "
            f"{reset_at:%Y-%m-%d %H:%M} UTC, or until `manage.py fetch_tweets --resume` after buying credits.",
            reset_at=reset_at,
        )

    # -- download --------------------------------------------------------------

    def serves(self, hashtag: str) -> bool:
        return True  # any hashtag

    def download(self, photo: Photo) -> bytes:
        """The photo's bytes through the one helper for untrusted URLs (allowlist, address checks, caps)."""
        return download_photo(photo.url)
