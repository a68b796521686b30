"""A loopback HTTPS stand-in for a Bluesky service (PDS + AppView) and its image CDN.

Written from the public lexicons and docs (com.atproto.server.createSession/refreshSession,
app.bsky.feed.searchPosts, app.bsky.embed.*#view, com.atproto.label.defs#label) and the
rate-limit headers Bluesky sends (`ratelimit-limit`, `-remaining`, `-reset` in epoch seconds,
`-policy`)::

    with FakeBluesky(ctx) as bsky:
        bsky.add_post(author="ada.bsky.social", images=[(jpeg, "alt text")])
        source = BlueskySource(api_url=bsky.url, handle=bsky.handle, app_password=bsky.password, ...)

- createSession checks the identifier and app password (401 AuthenticationRequired otherwise) and
  issues JWTs whose `exp` claims follow `access_ttl` / `refresh_ttl` (the SDK refreshes from them).
- refreshSession takes the refresh JWT, rotates both tokens and revokes the old refresh token;
  an expired one answers 400 ExpiredToken, as the PDS does.
- searchPosts needs a valid access JWT (401 AuthMissing without, 400 ExpiredToken when expired),
  filters on `tag` (AND) and `since` (inclusive, on sortAt = min(createdAt, indexedAt)), sorts
  latest first and pages with an opaque `cursor`.
Time comes from time.time(), so time-machine moves token expiry too.
"""

from __future__ import annotations

import base64
import itertools
import json
import secrets
import ssl
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from everhash.testing.loopback import LoopbackAPI, Reply, Request
from everhash.testing.media_server import MediaServer

SEARCH = "/xrpc/app.bsky.feed.searchPosts"
CREATE_SESSION = "/xrpc/com.atproto.server.createSession"
REFRESH_SESSION = "/xrpc/com.atproto.server.refreshSession"
FIRST_TIME = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
SERVICE_DID = "did:web:fake.bsky.test"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class _Post:
    uri: str
    cid: str
    did: str
    handle: str
    display_name: str
    text: str
    tags: set[str]
    created_at: datetime
    indexed_at: datetime
    likes: int
    embed: dict | None
    record_embed: dict | None
    labels: list[str] = field(default_factory=list)
    self_labels: list[str] = field(default_factory=list)

    @property
    def sort_at(self) -> datetime:
        return min(self.created_at, self.indexed_at)


class FakeBluesky(LoopbackAPI):
    failure_kinds = frozenset({"429", "500", "garbage"})
    name = "fake-bluesky"

    def __init__(
        self,
        tls_context: ssl.SSLContext,
        *,
        handle: str = "everhash.bsky.test",
        password: str = "abcd-efgh-ijkl-mnop",  # noqa: S107 - a fake account's app password
        access_ttl: timedelta = timedelta(hours=2),
        refresh_ttl: timedelta = timedelta(days=90),
        rate_limit: int = 3000,
    ) -> None:
        super().__init__(tls_context)
        self.handle = handle
        self.password = password
        self.did = "did:plc:everhashaccount00000000"
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        self.rate_limit = rate_limit
        self.remaining = rate_limit
        self.reset_epoch = int(time.time()) + 300
        self.access_tokens: dict[str, float] = {}  # token -> expiry (epoch seconds)
        self.refresh_tokens: dict[str, float] = {}
        self._posts: list[_Post] = []
        self._rkeys = itertools.count(1)
        self._cursors: dict[str, int] = {}
        self.cdn = MediaServer(tls_context)

    def stop(self) -> None:
        super().stop()
        self.cdn.close()

    # -- content -----------------------------------------------------------------

    def add_post(
        self,
        *,
        author: str = "someone.bsky.social",
        display_name: str | None = None,
        tag: str = "sunset",
        text: str | None = None,
        images: list = (),  # bytes, or (bytes, alt) or (bytes, alt, width, height)
        embed: str = "images",  # images | record_with_media | video | external
        labels: list[str] = (),
        self_labels: list[str] = (),
        likes: int = 0,
        created_at: datetime | None = None,
        indexed_at: datetime | None = None,
    ) -> str:
        """Store a post and return its at:// uri. Later posts are newer unless dates say otherwise."""
        with self.lock:
            n = next(self._rkeys)
            did = f"did:plc:{author.split('.')[0][:10]:0<24}"
            rkey = f"3l{n:011d}"
            uri = f"at://{did}/app.bsky.feed.post/{rkey}"
            created = created_at or FIRST_TIME + timedelta(minutes=n)
            views, blobs = [], []
            for item in images:
                if isinstance(item, bytes):
                    item = (item, "")
                data, alt, width, height = (*item, 1200, 800)[:4]
                cid = f"bafkrei{secrets.token_hex(20)}"
                path = f"/img/feed_fullsize/plain/{did}/{cid}@jpeg"
                self.cdn.add(path, data)
                views.append(
                    {
                        "thumb": self.cdn.url(path.replace("feed_fullsize", "feed_thumbnail")),
                        "fullsize": self.cdn.url(path),
                        "alt": alt,
                        "aspectRatio": {"width": width, "height": height},
                    }
                )
                blobs.append(
                    {
                        "alt": alt,
                        "image": {"$type": "blob", "ref": {"$link": cid}, "mimeType": "image/jpeg", "size": len(data)},
                        "aspectRatio": {"width": width, "height": height},
                    }
                )
            view, record_embed = self._embed(embed, views, blobs, did)
            words = text if text is not None else f"Picture {n}"
            body = f"{words} #{tag}"
            self._posts.append(
                _Post(
                    uri=uri,
                    cid=f"bafyrei{secrets.token_hex(20)}",
                    did=did,
                    handle=author,
                    display_name=display_name if display_name is not None else author.split(".")[0].title(),
                    text=body,
                    tags={tag.casefold()},
                    created_at=created,
                    indexed_at=indexed_at or created + timedelta(seconds=1),
                    likes=likes,
                    embed=view,
                    record_embed=record_embed,
                    labels=list(labels),
                    self_labels=list(self_labels),
                )
            )
            return uri

    def _embed(self, kind: str, views: list, blobs: list, did: str) -> tuple[dict | None, dict | None]:
        quoted = {
            "$type": "app.bsky.embed.record#viewNotFound",
            "uri": f"at://{did}/app.bsky.feed.post/3kquoted",
            "notFound": True,
        }
        strong_ref = {"uri": f"at://{did}/app.bsky.feed.post/3kquoted", "cid": "bafyreiquoted"}
        images_view = {"$type": "app.bsky.embed.images#view", "images": views}
        images_record = {"$type": "app.bsky.embed.images", "images": blobs}
        if kind == "images":
            return (images_view, images_record) if views else (None, None)
        if kind == "record_with_media":
            view = {"$type": "app.bsky.embed.recordWithMedia#view", "record": {"record": quoted}, "media": images_view}
            record = {
                "$type": "app.bsky.embed.recordWithMedia",
                "record": {"record": strong_ref},
                "media": images_record,
            }
            return view, record
        if kind == "video":
            view = {
                "$type": "app.bsky.embed.video#view",
                "cid": "bafkreivideo",
                "playlist": self.cdn.url("/watch/playlist.m3u8"),
                "thumbnail": self.cdn.url("/watch/thumbnail.jpg"),
                "aspectRatio": {"width": 640, "height": 360},
            }
            return view, None
        if kind == "external":
            external = {
                "uri": "https://example.org/",
                "title": "A link",
                "description": "",
                "thumb": self.cdn.url("/ext.jpg"),
            }
            return {"$type": "app.bsky.embed.external#view", "external": external}, None
        raise ValueError(f"unknown embed kind {kind!r}")

    def search_requests(self) -> list[Request]:
        return self.requests_to(SEARCH)

    def session_requests(self, kind: str) -> list[Request]:
        return self.requests_to({"create": CREATE_SESSION, "refresh": REFRESH_SESSION}[kind])

    # -- tokens ------------------------------------------------------------------

    def _jwt(self, scope: str, ttl: timedelta) -> tuple[str, float]:
        now = time.time()
        expires = now + ttl.total_seconds()
        header = {"typ": "at+jwt" if scope != "com.atproto.refresh" else "refresh+jwt", "alg": "ES256K"}
        claims = {"scope": scope, "sub": self.did, "aud": SERVICE_DID, "iat": int(now), "exp": int(expires)}
        if scope == "com.atproto.refresh":
            claims["jti"] = secrets.token_urlsafe(16)
        token = ".".join(
            (_b64(json.dumps(header).encode()), _b64(json.dumps(claims).encode()), _b64(secrets.token_bytes(32)))
        )
        return token, expires

    def _new_session(self) -> dict:
        access, access_exp = self._jwt("com.atproto.appPass", self.access_ttl)
        refresh, refresh_exp = self._jwt("com.atproto.refresh", self.refresh_ttl)
        self.access_tokens[access] = access_exp
        self.refresh_tokens[refresh] = refresh_exp
        return {"accessJwt": access, "refreshJwt": refresh, "handle": self.handle, "did": self.did, "active": True}

    def _bearer(self, request: Request) -> str:
        value = request.headers.get("authorization", "")
        return value[len("Bearer ") :] if value.startswith("Bearer ") else ""

    # -- answering -----------------------------------------------------------------

    def _rate_headers(self) -> dict[str, str]:
        return {
            "ratelimit-limit": str(self.rate_limit),
            "ratelimit-remaining": str(max(self.remaining, 0)),
            "ratelimit-reset": str(self.reset_epoch),
            "ratelimit-policy": f"{self.rate_limit};w=300",
        }

    def answer(self, request: Request) -> Reply:
        if request.path not in (SEARCH, CREATE_SESSION, REFRESH_SESSION):
            return Reply(501, {"error": "MethodNotImplemented", "message": "Method Not Implemented"})
        self.take_failure(request)
        kind, opts = request.failure or (None, {})
        with self.lock:
            if kind == "429" or self.remaining <= 0:
                reset = opts.get("reset", self.reset_epoch)
                headers = {**self._rate_headers(), "ratelimit-remaining": "0", "ratelimit-reset": str(int(reset))}
                return Reply(429, {"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"}, headers)
            self.remaining -= 1
            headers = self._rate_headers()
            if kind == "500":
                return Reply(500, {"error": "InternalServerError", "message": "Internal Server Error"}, headers)
            if request.path == CREATE_SESSION:
                data = request.json() or {}
                if (
                    not isinstance(data, dict)
                    or data.get("identifier") != self.handle
                    or data.get("password") != self.password
                ):
                    body = {"error": "AuthenticationRequired", "message": "Invalid identifier or password"}
                    return Reply(401, body, headers)
                return Reply(200, self._new_session(), headers)
            token = self._bearer(request)
            now = time.time()
            if request.path == REFRESH_SESSION:
                expiry = self.refresh_tokens.get(token)
                if expiry is None:
                    return Reply(400, {"error": "InvalidToken", "message": "Token could not be verified"}, headers)
                if expiry <= now:
                    return Reply(400, {"error": "ExpiredToken", "message": "Token has expired"}, headers)
                del self.refresh_tokens[token]  # rotated: the old refresh token is spent
                return Reply(200, self._new_session(), headers)
            if not token:
                return Reply(401, {"error": "AuthMissing", "message": "Authentication Required"}, headers)
            expiry = self.access_tokens.get(token)
            if expiry is None:
                return Reply(401, {"error": "InvalidToken", "message": "Bad token scope"}, headers)
            if expiry <= now:
                return Reply(400, {"error": "ExpiredToken", "message": "Token has expired"}, headers)
            if kind == "garbage":
                return Reply(200, {"posts": [{"uri": 42, "author": "nobody"}], "cursor": "x"}, headers)
            return self._search(request, headers)

    def _search(self, request: Request, headers: dict[str, str]) -> Reply:
        if not request.param("q"):
            return Reply(
                400, {"error": "InvalidRequest", "message": 'Error: Params must have the property "q"'}, headers
            )
        try:
            limit = int(request.param("limit", "25"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 100:
            return Reply(400, {"error": "InvalidRequest", "message": "Error: limit must be between 1 and 100"}, headers)
        tags = {t.casefold() for t in request.params.get("tag", [])}
        since = request.param("since")
        since_at = datetime.fromisoformat(since.replace("Z", "+00:00")) if since else None
        cursor = request.param("cursor")
        start = 0
        if cursor:
            if cursor not in self._cursors:
                return Reply(400, {"error": "InvalidRequest", "message": "invalid cursor"}, headers)
            start = self._cursors[cursor]
        matching = sorted(
            (p for p in self._posts if tags <= p.tags and (since_at is None or p.sort_at >= since_at)),
            key=lambda p: (p.sort_at, p.uri),
            reverse=True,
        )
        page = matching[start : start + limit]
        body: dict = {"posts": [self._view(p) for p in page]}
        if start + limit < len(matching):
            token = secrets.token_urlsafe(12)
            self._cursors[token] = start + limit
            body["cursor"] = token
        return Reply(200, body, headers)

    def _view(self, post: _Post) -> dict:
        record: dict = {
            "$type": "app.bsky.feed.post",
            "text": post.text,
            "createdAt": _iso(post.created_at),
            "langs": ["en"],
            "facets": [
                {
                    "$type": "app.bsky.richtext.facet",
                    "index": {
                        "byteStart": len(post.text.encode()) - len(next(iter(post.tags)).encode()) - 1,
                        "byteEnd": len(post.text.encode()),
                    },
                    "features": [{"$type": "app.bsky.richtext.facet#tag", "tag": next(iter(post.tags))}],
                }
            ],
        }
        if post.record_embed:
            record["embed"] = post.record_embed
        if post.self_labels:
            record["labels"] = {
                "$type": "com.atproto.label.defs#selfLabels",
                "values": [{"val": v} for v in post.self_labels],
            }
        view: dict = {
            "uri": post.uri,
            "cid": post.cid,
            "author": {
                "did": post.did,
                "handle": post.handle,
                "displayName": post.display_name,
                "avatar": self.cdn.url(f"/img/avatar/plain/{post.did}/avatar@jpeg"),
                "labels": [],
                "createdAt": "2024-01-01T00:00:00.000Z",
            },
            "record": record,
            "replyCount": 0,
            "repostCount": 0,
            "likeCount": post.likes,
            "quoteCount": 0,
            "indexedAt": _iso(post.indexed_at),
            "labels": [
                {
                    "src": "did:plc:ar7c4by46qjdydhdevvrndac",
                    "uri": post.uri,
                    "cid": post.cid,
                    "val": value,
                    "cts": _iso(post.indexed_at),
                }
                for value in post.labels
            ],
        }
        if post.embed:
            view["embed"] = post.embed
        return view
