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

import dataclasses
import html
import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import requests
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone
from twython import Twython, TwythonAuthError, TwythonError, TwythonRateLimitError

from albums.hashtags import normalize_hashtag
from everhash.lib.safehttp import DownloadError, combined_ca_bundle, download_image
from tweets.sources import AuthFailed, MediaError, Page, Photo, Post, RateLimit, RateLimited, SourceError, StaleCursor

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
# A reset time further away than this is not believed (a broken header must not park an album for years).
MAX_RATE_LIMIT_WAIT = timedelta(hours=24)


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


def _int(value: object) -> int:
    try:
        return max(int(value or 0), 0)  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError):
        return 0


def _dict(value: object) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list:
    return value if isinstance(value, list) else []


def parse_search_response(payload: object, *, rate_limit: RateLimit | None = None) -> Page:
    """A Page from a v2 search payload: photos only, joined with their media and authors.

    A page whose posts come without any `includes` raises SourceError (the
    cursor must not move past posts we could not read).

    Posts without photos, videos and GIF previews are dropped; retweets are
    dropped (the query excludes them; this guards against a retweet slipping
    through and being credited to the retweeter). Posts whose author or media
    are missing from `includes`, or whose date cannot be read, are skipped
    rather than failing the page: one odd post must not block an album forever.
    """
    if not isinstance(payload, dict):
        raise SourceError("The API sent something that is not a JSON object.")
    meta = _dict(payload.get("meta"))
    includes = _dict(payload.get("includes"))
    media_by_key = {m.get("media_key"): m for m in _list(includes.get("media")) if isinstance(m, dict)}
    users_by_id = {str(u.get("id")): u for u in _list(includes.get("users")) if isinstance(u, dict)}
    with_media = [
        item
        for item in _list(payload.get("data"))
        if isinstance(item, dict) and _list(_dict(item.get("attachments")).get("media_keys"))
    ]
    if with_media and not (media_by_key and users_by_id):
        # Without `includes` every post would be skipped and the cursor would move
        # past them for good: fail the page instead, so a later run fetches it again.
        raise SourceError("X sent posts without their media and authors (no 'includes'); retrying on the next run.")

    posts: list[Post] = []
    for item in _list(payload.get("data")):
        if not isinstance(item, dict) or not item.get("id"):
            continue
        if any(_dict(ref).get("type") == "retweeted" for ref in _list(item.get("referenced_tweets"))):
            continue
        author = users_by_id.get(str(item.get("author_id")))
        if not author or not author.get("username"):
            continue
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
                    width=_int(media.get("width")),
                    height=_int(media.get("height")),
                    alt_text=str(media.get("alt_text") or ""),
                )
            )
        if not photos:
            continue
        post_id = str(item["id"])
        posted_at = _parse_time(item.get("created_at"))
        if posted_at is None:
            logger.warning("Skipping post %s: unreadable created_at %r", post_id, item.get("created_at"))
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
                like_count=_int(_dict(item.get("public_metrics")).get("like_count")),
                posted_at=posted_at,
                sensitive=bool(item.get("possibly_sensitive")),
                photos=tuple(photos),
            )
        )
    newest = meta.get("newest_id")
    next_token = meta.get("next_token")
    return Page(
        posts=posts,
        newest_id=str(newest) if newest else None,
        next_token=str(next_token) if next_token else None,
        rate_limit=rate_limit or RateLimit(),
    )


# --- The X source ------------------------------------------------------------


def _header_int(value: object) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def _epoch(value: object) -> datetime | None:
    """An aware UTC datetime from an epoch-seconds header value (twython hands these over as strings)."""
    seconds = _header_int(value)
    if seconds is None:
        return None
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


class XSource:
    """X API v2 recent search through twython, with retries and plain-English errors."""

    name = "x"  # pictures.models.Source.X

    def __init__(
        self,
        *,
        base_url: str,
        bearer_token: str,
        ca_bundle: str | None = None,
        timeout: float = 20,
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
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - retry jitter, not security
        self._client = Twython(
            access_token=bearer_token,
            client_args={
                "timeout": timeout,
                "verify": ca_bundle or True,
                "headers": {"User-Agent": "everhash"},
            },
        )

    @classmethod
    def from_settings(cls) -> XSource:
        return cls(
            base_url=settings.EVERHASH_X_API_URL,
            bearer_token=settings.EVERHASH_X_BEARER_TOKEN,
            # EVERHASH_CA_BUNDLE adds authorities; requests' verify= would replace certifi's.
            ca_bundle=combined_ca_bundle(settings.EVERHASH_CA_BUNDLE) if settings.EVERHASH_CA_BUNDLE else None,
        )

    def __repr__(self) -> str:
        return f"<XSource {self.base_url}>"  # never the token

    # -- search ----------------------------------------------------------------

    def search(self, *, hashtag: str, since_id: str | None = None, next_token: str | None = None) -> Page:
        try:
            tag = normalize_hashtag(hashtag)
        except ValidationError:
            raise SourceError(f"{hashtag!r} is not a hashtag X can search for.") from None
        params = {"query": QUERY.format(hashtag=tag), **SEARCH_FIELDS}
        if since_id:
            params["since_id"] = str(since_id)
        if next_token:
            params["next_token"] = str(next_token)

        url = f"{self.base_url}{SEARCH_PATH}"
        attempts = 0
        while True:
            attempts += 1
            try:
                payload = self._client.request(url, params=params)
                break
            except TwythonError as exc:
                error, retryable = self._translate(exc, since_id=since_id)
                if not retryable or attempts > self.max_retries:
                    logger.warning("X search for #%s failed after %d request(s): %s", tag, attempts, exc)
                    raise error from exc
                delay = self._backoff(attempts - 1)
                logger.info("X search for #%s failed (%s); retrying in %.1fs", tag, exc, delay)
                self._sleep(delay)

        if isinstance(payload, str | bytes):
            raise SourceError("X sent a response that is not valid JSON.")
        page = parse_search_response(payload, rate_limit=self._rate_limit())
        return dataclasses.replace(page, requests=attempts)

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
        return self._rng.uniform(0, min(self.backoff_cap, self.backoff_base * 2**attempt))

    def _rate_limit(self) -> RateLimit:
        header = self._client.get_lastfunction_header
        return RateLimit(
            limit=_header_int(header("x-rate-limit-limit")),
            remaining=_header_int(header("x-rate-limit-remaining")),
            reset_at=_epoch(header("x-rate-limit-reset")),
        )

    def _translate(self, exc: TwythonError, *, since_id: str | None) -> tuple[SourceError, bool]:
        """The SourceError to raise for a twython failure, and whether another attempt is worth it.

        Only 5xx answers, timeouts and dropped connections are retried; a 429
        never is (the reset time is handed to the caller), nor is any other 4xx.
        """
        code = exc.error_code
        if isinstance(exc, TwythonRateLimitError) or code == 429:
            # twython's retry_after is the raw x-rate-limit-reset header: epoch seconds, as a string.
            return self._rate_limited(getattr(exc, "retry_after", None)), False
        if isinstance(exc, TwythonAuthError) or code in (401, 403):
            return AuthFailed(f"X refused the bearer token ({code}): check EVERHASH_X_BEARER_TOKEN."), False
        if code == 400 and since_id:
            message = f"X no longer searches back to post {since_id} (its window is 7 days): starting from the newest."
            return StaleCursor(message), False
        if code is not None and code >= 500:
            return SourceError(f"X is having trouble (it answered {code}); the search will be tried again later."), True
        if code is not None:
            logger.warning("X rejected the search: %s", exc)
            return SourceError(f"X rejected the search request ({code})."), False
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
        now = timezone.now()
        reset_at = _epoch(reset_header)
        if reset_at is None or not (now - MAX_RATE_LIMIT_WAIT <= reset_at <= now + MAX_RATE_LIMIT_WAIT):
            reset_at = now + DEFAULT_RATE_LIMIT_WAIT
        return RateLimited(
            f"X's rate limit is used up until {reset_at:%H:%M} UTC; no request is made before then.",
            reset_at=reset_at,
        )

    # -- download --------------------------------------------------------------

    def download(self, photo: Photo) -> bytes:
        """The photo's bytes through the one helper for untrusted URLs (allowlist, address checks, caps)."""
        try:
            return download_image(photo.url)
        except DownloadError as exc:
            raise MediaError(str(exc), reason=exc.reason) from exc
