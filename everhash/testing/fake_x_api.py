"""A loopback HTTPS stand-in for X API v2 recent search (and, optionally, for pbs.twimg.com).

Usable from pytest and from plain scripts (the benchmark)::

    with FakeXAPI(ssl_context, bearer_token="t0ken") as fake:
        fake.add_post(author=("ada", "Ada L."), photos=[("3_1", "https://pbs.twimg.com/media/a.jpg", 800, 600, "")])
        source = XSource(base_url=fake.url, bearer_token="t0ken", ca_bundle=ca_path)

It answers `GET /2/tweets/search/recent` the way X does: newest first, `since_id`
and `until_id` exclusive (ids compared as integers), opaque `next_token`s that hold
only the position (the request's own `since_id` still bounds the page, as X documents:
a token is sent again with the same parameters),
`max_results` 10..100, `expansions`/`*.fields` honoured (a field that was not
asked for is not sent), `includes.media`/`includes.users` per page, `meta`, and
`x-rate-limit-*` headers on every answer (a 429 once the budget is spent). It
checks the bearer token (401 otherwise) and records every request.

It is deliberately lax about the query: it returns every stored post carrying
the query's hashtag(s), videos, GIFs and retweets included, so tests can check
that the client drops them. `fail_next(kind)` makes the next answers misbehave.

`add_image(name, data)` serves bytes at `/media/<name>` from the same server,
so one loopback server can stand in for both the API and the media host.
"""

from __future__ import annotations

import itertools
import json
import re
import secrets
import socket
import ssl
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlsplit

from everhash.testing.tls_server import TLSServer, TrackedHandler

SEARCH_PATH = "/2/tweets/search/recent"
FIRST_ID = 1_900_000_000_000_000_000  # X-sized ids (above 2**60), still inside 63 bits
FIRST_TIME = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
DEFAULT_BEARER = "test-bearer-token"

FAILURE_KINDS = {
    "429",  # rate limit exceeded; opts: reset=<epoch seconds>
    "400",  # a stale since_id, worded as X words it
    "400_query",  # another 400: X's answer to a query it cannot parse
    "401",
    "403",
    "403_not_enrolled",  # a valid token whose plan cannot search (X's client-not-enrolled)
    "usage_cap",  # 429 UsageCapExceeded: the account's monthly cap is spent (rate limit headers still fine)
    "404",
    "500",
    "502",  # an HTML error page, as a load balancer sends
    "503",
    "malformed_json",  # 200 with a truncated JSON body
    "not_an_object",  # 200 with a JSON list
    "missing_includes",  # a normal page without `includes`
    "no_meta",  # a normal page without `meta` (so without newest_id and next_token)
    "timeout",  # answer only after opts delay=<seconds> (default 5): longer than a short client timeout
    "drip",  # a normal page sent one byte every opts interval=<seconds> (default 0.5)
    "disconnect",  # close the connection without answering
}

_HASHTAG = re.compile(r"#(\w+)")
_TWEET_DEFAULT_FIELDS = ("id", "text", "edit_history_tweet_ids")
_MEDIA_DEFAULT_FIELDS = ("media_key", "type")
_USER_DEFAULT_FIELDS = ("id", "name", "username")


@dataclass
class RecordedRequest:
    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    status: int = 0
    posts: int = 0  # posts in the answer's `data`


@dataclass
class _Media:
    media_key: str
    type: str  # photo | video | animated_gif
    url: str = ""
    preview_image_url: str = ""
    width: int = 1200
    height: int = 800
    alt_text: str = ""

    def as_json(self, fields: set[str]) -> dict:
        data: dict = {"media_key": self.media_key, "type": self.type}
        if self.type == "photo" and "url" in fields:
            data["url"] = self.url
        if self.type != "photo" and "preview_image_url" in fields and self.preview_image_url:
            data["preview_image_url"] = self.preview_image_url
        for name in ("width", "height"):
            if name in fields:
                data[name] = getattr(self, name)
        if "alt_text" in fields and self.alt_text:
            data["alt_text"] = self.alt_text
        return data


@dataclass
class _Post:
    id: int
    author_id: str
    text: str
    created_at: str
    likes: int
    sensitive: bool
    media: list[_Media]
    tags: set[str]
    referenced: list[dict] = field(default_factory=list)

    def as_json(self, fields: set[str]) -> dict:
        data: dict = {"id": str(self.id), "text": self.text, "edit_history_tweet_ids": [str(self.id)]}
        if "author_id" in fields:
            data["author_id"] = self.author_id
        if "created_at" in fields:
            data["created_at"] = self.created_at
        if "attachments" in fields and self.media:
            data["attachments"] = {"media_keys": [m.media_key for m in self.media]}
        if "public_metrics" in fields:
            data["public_metrics"] = {
                "retweet_count": 0,
                "reply_count": 0,
                "like_count": self.likes,
                "quote_count": 0,
                "bookmark_count": 0,
                "impression_count": self.likes * 10,
            }
        if "possibly_sensitive" in fields:
            data["possibly_sensitive"] = self.sensitive
        if "referenced_tweets" in fields and self.referenced:
            data["referenced_tweets"] = self.referenced
        return data


def _error(status: int, title: str, detail: str, **extra) -> dict:
    return {"title": title, "detail": detail, "type": "about:blank", "status": status, **extra}


class _Handler(TrackedHandler):
    owner: FakeXAPI

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        headers = {key.lower(): value for key, value in self.headers.items()}
        record = RecordedRequest(method="GET", path=parts.path, params=params, headers=headers)
        with self.owner.lock:
            self.owner.requests.append(record)

        if parts.path.startswith("/media/"):
            with self.owner.lock:
                image = self.owner._images.get(parts.path.removeprefix("/media/"))
            if image is None:
                record.status = 404
                self.send_answer(404, {"content-type": "text/plain"}, b"not found")
            else:
                record.status = 200
                self.send_answer(200, {"content-type": image[1]}, image[0])
            return
        if parts.path != SEARCH_PATH:
            record.status = 404
            body = _error(404, "Not Found Error", f"Could not find {parts.path}")
            self.send_answer(404, {}, json.dumps(body).encode())
            return

        status, headers_out, body, extra = self.owner._answer(params, headers)
        record.status = status
        record.posts = extra.get("posts", 0) if status == 200 else 0
        if extra.get("disconnect"):
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if "delay" in extra and self.owner._stopping.wait(extra["delay"]):
            return
        self.send_answer(status, headers_out, body, drip=extra.get("drip"))


class FakeXAPI(TLSServer):
    """A threaded HTTPS server on 127.0.0.1 (ephemeral port) that behaves like X's recent search."""

    handler = _Handler
    name = "fake-x-api"

    def __init__(
        self,
        tls_context: ssl.SSLContext,
        *,
        bearer_token: str = DEFAULT_BEARER,
        host: str = "127.0.0.1",
        rate_limit: int = 450,
        rate_limit_reset: int | None = None,
    ) -> None:
        super().__init__(tls_context, host=host)
        self.bearer_token = bearer_token
        self.rate_limit = rate_limit
        self.rate_limit_remaining = rate_limit
        # Epoch seconds of the end of the current rate-limit window.
        self.rate_limit_reset = rate_limit_reset or int(time.time()) + 900
        self.requests: list[RecordedRequest] = []
        self._posts: dict[int, _Post] = {}
        self._users: dict[str, tuple[str, str]] = {}  # author id -> (username, name)
        self._user_ids: dict[str, str] = {}  # username -> author id
        self._images: dict[str, tuple[bytes, str]] = {}
        self._tokens: dict[str, tuple[str, int]] = {}  # token -> (query, the oldest id already sent)
        self._hidden_authors: set[str] = set()  # author ids X cannot return (suspended, protected)
        self._failures: deque[tuple[str, dict]] = deque()
        self._ids = itertools.count(FIRST_ID)

    # -- content -----------------------------------------------------------------

    def add_post(
        self,
        *,
        id: int | str | None = None,  # mirrors X's field name
        tag: str = "sunset",
        author: tuple[str, str] = ("someone", "Some One"),
        text: str | None = None,
        likes: int = 0,
        created_at: datetime | str | None = None,
        photos: list | tuple = (),
        videos: list | tuple = (),
        gifs: list | tuple = (),
        sensitive: bool = False,
        retweet_of: int | str | None = None,
    ) -> str:
        """Store a post and return its id (a string, as X sends ids).

        Ids are allocated in increasing order, so a later post is newer. `photos`
        items are `(media_key, url, width, height, alt_text)` (trailing items
        optional) or just a URL; `videos` and `gifs` items are a media key or
        `(media_key, preview_url, width, height)`. `retweet_of` makes the post a
        retweet (`referenced_tweets` type `retweeted`) of that id.
        """
        with self.lock:
            post_id = int(id) if id is not None else next(self._ids)
            if post_id in self._posts:
                raise ValueError(f"post {post_id} already exists")
            n = len(self._posts)
            username, name = author
            author_id = self._user_ids.get(username)
            if author_id is None:
                author_id = str(1_000_000 + len(self._user_ids))
                self._user_ids[username] = author_id
                self._users[author_id] = (username, name)
            media = [self._photo(item, post_id, i) for i, item in enumerate(photos)]
            media += [self._moving(item, post_id, i, "video", "7") for i, item in enumerate(videos)]
            media += [self._moving(item, post_id, i, "animated_gif", "16") for i, item in enumerate(gifs)]
            if text is None:
                text = f"Picture {n + 1} #{tag}"
                if retweet_of is not None:
                    text = f"RT @someone: {text}"
            if created_at is None:
                created_at = FIRST_TIME + timedelta(minutes=n)
            if isinstance(created_at, datetime):
                created_at = created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
            tags = {tag.lower()} | {t.lower() for t in _HASHTAG.findall(text)}
            referenced = [{"type": "retweeted", "id": str(retweet_of)}] if retweet_of is not None else []
            self._posts[post_id] = _Post(
                id=post_id,
                author_id=author_id,
                text=text,
                created_at=created_at,
                likes=likes,
                sensitive=sensitive,
                media=media,
                tags=tags,
                referenced=referenced,
            )
            return str(post_id)

    def add_posts(
        self, count: int, *, photo_url: str = "https://pbs.twimg.com/media/{media_key}.jpg", **kwargs
    ) -> list[str]:
        """`count` one-photo posts, oldest first; `photo_url` is formatted with `media_key` and `n`."""
        ids = []
        for n in range(count):
            with self.lock:
                post_id = next(self._ids)
                media_key = f"3_{post_id}"
                url = photo_url.format(media_key=media_key, n=n)
                ids.append(self.add_post(id=post_id, photos=[(media_key, url)], **kwargs))
        return ids

    def add_retweet(
        self, original_id: int | str, *, by: tuple[str, str] = ("retweeter", "Re Tweeter"), **kwargs
    ) -> str:
        """A retweet of a stored post, carrying the original's photos (as X's payloads may)."""
        with self.lock:
            original = self._posts[int(original_id)]
            photos = [(m.media_key, m.url, m.width, m.height, m.alt_text) for m in original.media if m.type == "photo"]
            tag = next(iter(original.tags))
        return self.add_post(author=by, tag=tag, photos=photos, retweet_of=original_id, **kwargs)

    def add_image(self, name: str, data: bytes, content_type: str = "image/jpeg") -> str:
        """Serve `data` at /media/<name>; returns its https URL on this server."""
        with self.lock:
            self._images[name] = (data, content_type)
        return f"{self.url}/media/{name}"

    def fail_next(self, kind: str, times: int = 1, **opts: object) -> None:
        """Make the next `times` API answers misbehave (see FAILURE_KINDS). Queued in order."""
        if kind not in FAILURE_KINDS:
            raise ValueError(f"unknown failure kind {kind!r}; choose from {sorted(FAILURE_KINDS)}")
        with self.lock:
            self._failures.extend([(kind, dict(opts))] * times)

    def hide_author(self, username: str) -> None:
        """Answer this author's posts without their user in `includes.users`, explained by a
        partial `errors` entry, as X does for a suspended or protected account."""
        with self.lock:
            self._hidden_authors.add(self._user_ids[username])

    def posts_returned(self) -> int:
        """Every post sent in `data` so far: what X bills."""
        with self.lock:
            return sum(r.posts for r in self.requests)

    def search_requests(self) -> list[RecordedRequest]:
        with self.lock:
            return [r for r in self.requests if r.path == SEARCH_PATH]

    def _photo(self, item: object, post_id: int, index: int) -> _Media:
        if isinstance(item, str):
            item = (f"3_{post_id}{index}", item)
        key, url, *rest = item  # type: ignore[misc]
        width, height, alt = (list(rest) + [1200, 800, ""][len(rest) :])[:3]
        return _Media(media_key=str(key), type="photo", url=url, width=width, height=height, alt_text=alt)

    def _moving(self, item: object, post_id: int, index: int, kind: str, prefix: str) -> _Media:
        if isinstance(item, str):
            item = (item,)
        key, *rest = item  # type: ignore[misc]
        preview, width, height = (
            list(rest) + [f"https://pbs.twimg.com/tweet_video_thumb/{key}.jpg", 640, 360][len(rest) :]
        )[:3]
        return _Media(media_key=str(key), type=kind, preview_image_url=preview, width=width, height=height)

    # -- answering -----------------------------------------------------------------

    def _rate_headers(self, remaining: int | None = None, reset: int | None = None) -> dict[str, str]:
        return {
            "x-rate-limit-limit": str(self.rate_limit),
            "x-rate-limit-remaining": str(self.rate_limit_remaining if remaining is None else remaining),
            "x-rate-limit-reset": str(self.rate_limit_reset if reset is None else reset),
        }

    def _answer(self, params: dict[str, str], headers: dict[str, str]) -> tuple[int, dict[str, str], bytes, dict]:
        """(status, headers, body, opts) for one search request."""
        with self.lock:
            if headers.get("authorization") != f"Bearer {self.bearer_token}":
                body = _error(401, "Unauthorized", "Unauthorized")
                return 401, self._rate_headers(), json.dumps(body).encode(), {}
            kind, opts = self._failures.popleft() if self._failures else (None, {})
            if kind != "429":
                if self.rate_limit_remaining <= 0:
                    kind, opts = "429", {}
                else:
                    self.rate_limit_remaining -= 1
            rate = self._rate_headers()
            if kind == "429":
                reset = opts.get("reset", self.rate_limit_reset)  # reset=None: no header at all
                headers_out = self._rate_headers(remaining=0, reset=int(reset) if reset is not None else None)
                if reset is None:
                    del headers_out["x-rate-limit-reset"]
                body = _error(429, "Too Many Requests", "Too Many Requests")
                return 429, headers_out, json.dumps(body).encode(), {}
            if kind == "400":
                since = params.get("since_id", "0")
                oldest = (datetime.now(UTC) - timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%SZ")
                message = f"Invalid 'since_id':'{since}'. 'since_id' must be a tweet id created after {oldest}."
                body = {
                    "errors": [{"parameters": {"since_id": [since]}, "message": message}],
                    "title": "Invalid Request",
                    "detail": "One or more parameters to your request was invalid.",
                    "type": "https://api.twitter.com/2/problems/invalid-request",
                }
                return 400, rate, json.dumps(body).encode(), {}
            if kind == "400_query":
                body = {
                    "errors": [
                        {
                            "parameters": {"query": [params.get("query", "")]},
                            "message": "There were errors processing your request: Ambiguous use of has:images",
                        }
                    ],
                    "title": "Invalid Request",
                    "detail": "One or more parameters to your request was invalid.",
                    "type": "https://api.twitter.com/2/problems/invalid-request",
                }
                return 400, rate, json.dumps(body).encode(), {}
            if kind == "403_not_enrolled":
                body = {
                    "client_id": "29011975",
                    "detail": "When authenticating requests to the Twitter API v2 endpoints, you must use keys and "
                    "tokens from a Twitter developer App that is attached to a Project. You can create a project "
                    "via the developer portal.",
                    "registration_url": "https://developer.twitter.com/en/docs/projects/overview",
                    "title": "Client Forbidden",
                    "required_enrollment": "Appropriate Level of API Access",
                    "reason": "client-not-enrolled",
                    "type": "https://api.twitter.com/2/problems/client-forbidden",
                }
                return 403, rate, json.dumps(body).encode(), {}
            if kind == "usage_cap":
                body = {
                    "account_id": 1234567890,
                    "product_name": "standard-basic",
                    "title": "UsageCapExceeded",
                    "period": "Monthly",
                    "scope": "Product",
                    "detail": "Usage cap exceeded: Monthly product cap",
                    "type": "https://api.twitter.com/2/problems/usage-capped",
                }
                return 429, rate, json.dumps(body).encode(), {}
            if kind in ("401", "403", "404", "500", "503"):
                status = int(kind)
                titles = {401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 500: "Internal Server Error"}
                title = titles.get(status, "Service Unavailable")
                return status, rate, json.dumps(_error(status, title, title)).encode(), {}
            if kind == "502":
                page = b"<html><head><title>502 Bad Gateway</title></head><body>Bad Gateway</body></html>"
                return 502, {**rate, "content-type": "text/html"}, page, {}
            if kind == "malformed_json":
                return 200, rate, b'{"data": [{"id": "19000000000', {}
            if kind == "not_an_object":
                return 200, rate, b"[]", {}
            if kind == "disconnect":
                return 0, {}, b"", {"disconnect": True}
            status, body = self._search(params)
            if kind == "missing_includes":
                body.pop("includes", None)
            if kind == "no_meta":
                body.pop("meta", None)
            extra: dict = {}
            if kind == "timeout":
                extra = {"delay": float(opts.get("delay", 5.0))}
            if kind == "drip":
                extra = {"drip": float(opts.get("interval", 0.5))}
            extra["posts"] = len(body.get("data", []))
            return status, rate, json.dumps(body).encode(), extra

    def _search(self, params: dict[str, str]) -> tuple[int, dict]:
        def invalid(message: str, parameter: str) -> tuple[int, dict]:
            return 400, {
                "errors": [{"parameters": {parameter: [params.get(parameter, "")]}, "message": message}],
                "title": "Invalid Request",
                "detail": "One or more parameters to your request was invalid.",
                "type": "https://api.twitter.com/2/problems/invalid-request",
            }

        query = params.get("query", "")
        if not query or len(query) > 512:
            return invalid("The `query` parameter is required and at most 512 characters long.", "query")
        try:
            max_results = int(params.get("max_results", "10"))
        except ValueError:
            return invalid("The `max_results` query parameter value is not valid.", "max_results")
        if not 10 <= max_results <= 100:
            return invalid("The `max_results` query parameter value must be between 10 and 100.", "max_results")
        for name in ("since_id", "until_id"):
            if name in params and not params[name].isdigit():
                return invalid(f"The `{name}` query parameter value [{params[name]}] is not valid.", name)
        since = int(params["since_id"]) if "since_id" in params else None
        until = int(params["until_id"]) if "until_id" in params else None
        token = params.get("next_token") or params.get("pagination_token")
        if token:
            if token not in self._tokens or self._tokens[token][0] != query:
                return invalid(f"The `next_token` query parameter value [{token}] is not valid.", "next_token")
            # The token is a position; the bounds are the request's (since_id is not remembered).
            position = self._tokens[token][1]
            until = position if until is None else min(until, position)

        # X matches hashtags without regard to case, but ß is not ss: lower(), not casefold().
        tags = {t.lower() for t in _HASHTAG.findall(query)}
        matching = sorted(
            (
                post
                for post in self._posts.values()
                if tags <= post.tags and (since is None or post.id > since) and (until is None or post.id < until)
            ),
            key=lambda post: post.id,
            reverse=True,
        )
        page, rest = matching[:max_results], matching[max_results:]

        def fields(name: str, defaults: tuple[str, ...]) -> set[str]:
            return set(defaults) | {f for f in params.get(name, "").split(",") if f}

        tweet_fields = fields("tweet.fields", _TWEET_DEFAULT_FIELDS)
        media_fields = fields("media.fields", _MEDIA_DEFAULT_FIELDS)
        user_fields = fields("user.fields", _USER_DEFAULT_FIELDS)
        expansions = set(params.get("expansions", "").split(","))

        body: dict = {}
        if page:
            body["data"] = [post.as_json(tweet_fields) for post in page]
            includes: dict = {}
            if "attachments.media_keys" in expansions:
                includes["media"] = [m.as_json(media_fields) for post in page for m in post.media]
            errors = []
            if "author_id" in expansions:
                author_ids = list(dict.fromkeys(post.author_id for post in page))
                includes["users"] = [
                    self._user_json(author_id, user_fields)
                    for author_id in author_ids
                    if author_id not in self._hidden_authors
                ]
                errors = [
                    {
                        "value": author_id,
                        "detail": f"Could not find user with author_id: [{author_id}].",
                        "title": "Not Found Error",
                        "resource_type": "user",
                        "parameter": "author_id",
                        "resource_id": author_id,
                        "type": "https://api.twitter.com/2/problems/resource-not-found",
                    }
                    for author_id in author_ids
                    if author_id in self._hidden_authors
                ]
            includes = {key: value for key, value in includes.items() if value}
            if includes:
                body["includes"] = includes
            if errors:
                body["errors"] = errors
        meta: dict = {"result_count": len(page)}
        if page:
            meta["newest_id"] = str(page[0].id)
            meta["oldest_id"] = str(page[-1].id)
        if rest:
            token = secrets.token_urlsafe(12)
            self._tokens[token] = (query, page[-1].id)
            meta["next_token"] = token
        body["meta"] = meta
        return 200, body

    def _user_json(self, author_id: str, fields: set[str]) -> dict:
        username, name = self._users[author_id]
        data = {"id": author_id, "username": username, "name": name}
        return {key: value for key, value in data.items() if key in fields}
