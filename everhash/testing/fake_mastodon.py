"""Loopback HTTPS stand-ins for Mastodon instances that federate statuses between them.

Written from the public API documentation (docs.joinmastodon.org: timelines, Status and
MediaAttachment entities, pagination, rate limits)::

    fediverse = Fediverse()
    with FakeMastodon(ctx, fediverse) as a, FakeMastodon(ctx, fediverse) as b:
        uri = a.post(user="ada", images=[jpeg_bytes])   # a status from an account of instance a
        b.receive(uri)                                   # ... federated to b, with b's own local id
        source = MastodonSource(base_url=a.url, ca_bundle=ca_path)

Each instance answers `GET /api/v1/timelines/tag/:hashtag` like Mastodon does: only the statuses
that reached it, newest first by its local id, `only_media`, `limit` (default 20, at most 40),
`max_id`/`since_id` exclusive, `min_id` (the page immediately newer), a `Link` header (rel="next"
only after a full page, rel="prev"), `X-RateLimit-Limit/Remaining/Reset` (ISO 8601) on every
answer and a 429 once the budget is spent. `GET /api/v2/instance` says whether hashtag feeds need
a signed-in app (`restricted=True`: 422 without a token, 401 with a wrong one).

Media: each instance has its own media host (a MediaServer). A status's images live on its origin
instance's host; a status federated to another instance gets a copy on that instance's host
(`url`) with the origin's address in `remote_url`, as Mastodon caches remote media.
"""

from __future__ import annotations

import itertools
import ssl
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlencode

from everhash.testing.loopback import LoopbackAPI, Reply, Request
from everhash.testing.media_server import MediaServer

TAG_PATH = "/api/v1/timelines/tag/"
FIRST_TIME = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class _Media:
    kind: str  # image | gifv | video | audio
    path: str  # on the origin's media host
    data: bytes
    width: int
    height: int
    description: str | None


@dataclass
class _Status:
    uri: str
    url: str
    origin: FakeMastodon
    username: str
    display_name: str
    content: str
    created_at: datetime
    tags: set[str]
    media: list[_Media]
    sensitive: bool = False
    spoiler_text: str = ""
    favourites: int = 0


class Fediverse:
    """Every status that exists anywhere; instances hold the ones that reached them."""

    def __init__(self) -> None:
        self.statuses: dict[str, _Status] = {}
        self.lock = threading.RLock()
        self._minutes = itertools.count()

    def next_time(self) -> datetime:
        return FIRST_TIME + timedelta(minutes=next(self._minutes))


class FakeMastodon(LoopbackAPI):
    failure_kinds = frozenset({"429", "500", "503", "404", "not_a_list"})
    name = "fake-mastodon"
    _bases = itertools.count(1)

    def __init__(
        self,
        tls_context: ssl.SSLContext,
        fediverse: Fediverse,
        *,
        restricted: bool = False,
        token: str = "",
        rate_limit: int = 300,
    ) -> None:
        super().__init__(tls_context)
        self.fediverse = fediverse
        self.restricted = restricted
        self.token = token
        self.rate_limit = rate_limit
        self.remaining = rate_limit
        self.reset_at = datetime.now(UTC) + timedelta(minutes=5)
        # Instances number their statuses independently: snowflake-sized, different on each.
        self._ids = itertools.count(113_000_000_000_000_000 + next(self._bases) * 1_000_000_000_000 + 1)
        self._local: dict[int, str] = {}  # local id -> uri
        self._media_ids = itertools.count(1)
        self.media = MediaServer(tls_context)

    def stop(self) -> None:
        super().stop()
        self.media.close()

    # -- content -----------------------------------------------------------------

    def post(
        self,
        *,
        user: str = "someone",
        display_name: str | None = None,
        tag: str = "sunset",
        text: str | None = None,
        images: list = (),  # bytes, or (bytes, description, width, height)
        gifv: int = 0,
        video: int = 0,
        sensitive: bool = False,
        spoiler_text: str = "",
        favourites: int = 0,
        created_at: datetime | None = None,
    ) -> str:
        """A new status by a local account, on this instance's hashtag timeline; returns its uri."""
        with self.fediverse.lock:
            number = len(self.fediverse.statuses) + 1
            uri = f"https://{self.netloc}/users/{user}/statuses/{number}"
            media = []
            for item in images:
                data, description, width, height = (item, None, 1200, 800) if isinstance(item, bytes) else item
                media.append(
                    _Media("image", f"/system/media/{number}/{len(media)}.jpg", data, width, height, description)
                )
            for kind, count in (("gifv", gifv), ("video", video)):
                for _ in range(count):
                    media.append(_Media(kind, f"/system/media/{number}/{len(media)}.mp4", b"\x00" * 64, 640, 360, None))
            for item in media:
                self.media.add(item.path, item.data, "image/jpeg" if item.kind == "image" else "video/mp4")
            words = text if text is not None else f"Picture {number}"
            link = f'<a href="https://{self.netloc}/tags/{tag}" class="mention hashtag">#<span>{tag}</span></a>'
            content = f"<p>{words} {link}</p>"
            status = _Status(
                uri=uri,
                url=f"https://{self.netloc}/@{user}/{number}",
                origin=self,
                username=user,
                display_name=display_name if display_name is not None else user.title(),
                content=content,
                created_at=created_at or self.fediverse.next_time(),
                tags={tag.casefold()},
                media=media,
                sensitive=sensitive,
                spoiler_text=spoiler_text,
                favourites=favourites,
            )
            self.fediverse.statuses[uri] = status
        self.receive(uri)
        return uri

    def posts(self, count: int, **kwargs) -> list[str]:
        """`count` one-image statuses, oldest first (images made by `image(n)` when given)."""
        make = kwargs.pop("image", lambda n: b"\xff\xd8 image %d" % n)
        return [self.post(images=[make(n)], **kwargs) for n in range(count)]

    def receive(self, uri: str) -> int:
        """The status arrives here (federation): it gets a new local id, the newest on this instance."""
        with self.lock:
            local_id = next(self._ids)
            self._local[local_id] = uri
        status = self.fediverse.statuses[uri]
        if status.origin is not self:
            for item in status.media:
                self.media.add(f"/cache{item.path}", item.data, "image/jpeg" if item.kind == "image" else "video/mp4")
        return local_id

    def local_id(self, uri: str) -> str:
        with self.lock:
            return str(next(local for local, known in self._local.items() if known == uri))

    def timeline_requests(self) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.path.startswith(TAG_PATH)]

    # -- answering -----------------------------------------------------------------

    def _rate_headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.rate_limit),
            "X-RateLimit-Remaining": str(max(self.remaining, 0)),
            "X-RateLimit-Reset": _iso(self.reset_at),
        }

    def answer(self, request: Request) -> Reply:
        if request.path.rstrip("/") == "/api/v2/instance":
            access = "authenticated" if self.restricted else "public"
            feeds = {"local": access, "remote": access}
            timelines = {"live_feeds": feeds, "hashtag_feeds": feeds, "trending_link_feeds": feeds}
            body = {
                "domain": self.netloc,
                "title": "Fake",
                "version": "4.5.0",
                "configuration": {"timelines_access": timelines},
            }
            return Reply(200, body, self._rate_headers())
        if not request.path.startswith(TAG_PATH):
            return Reply(404, {"error": "Record not found"})
        self.take_failure(request)
        kind, opts = request.failure or (None, {})
        with self.lock:
            if kind == "429" or self.remaining <= 0:
                reset = opts.get("reset", self.reset_at)
                headers = {**self._rate_headers(), "X-RateLimit-Remaining": "0"}
                if reset is not None:
                    headers["X-RateLimit-Reset"] = _iso(reset)
                else:
                    del headers["X-RateLimit-Reset"]
                if "retry_after" in opts:
                    headers["Retry-After"] = str(opts["retry_after"])
                return Reply(429, {"error": "Too many requests"}, headers)
            self.remaining -= 1
            headers = self._rate_headers()
        if kind in ("500", "503", "404"):
            return Reply(int(kind), {"error": "Something went wrong"}, headers)
        authorization = request.headers.get("authorization", "")
        if authorization and authorization != f"Bearer {self.token}":
            return Reply(401, {"error": "The access token is invalid"}, headers)
        if self.restricted and not authorization:
            return Reply(422, {"error": "This method requires an authenticated user"}, headers)
        if kind == "not_a_list":
            return Reply(200, {"statuses": []}, headers)
        return self._timeline(request, headers)

    def _timeline(self, request: Request, headers: dict[str, str]) -> Reply:
        tag = request.path[len(TAG_PATH) :].casefold()
        try:
            limit = min(max(int(request.param("limit", "20")), 1), 40)
            max_id, since_id, min_id = (
                int(request.param(n)) if request.param(n) else None for n in ("max_id", "since_id", "min_id")
            )
        except ValueError:
            return Reply(422, {"error": "Validation failed"}, headers)
        only_media = request.param("only_media") in ("true", "1", "True")
        with self.lock, self.fediverse.lock:
            matching = sorted(
                (
                    (local, self.fediverse.statuses[uri])
                    for local, uri in self._local.items()
                    if tag in self.fediverse.statuses[uri].tags
                    and (not only_media or self.fediverse.statuses[uri].media)
                    and (max_id is None or local < max_id)
                    and (since_id is None or local > since_id)
                    and (min_id is None or local > min_id)
                ),
                key=lambda pair: pair[0],
                reverse=True,
            )
            # min_id: the page immediately newer than it (the oldest matches), still newest first.
            page = matching[-limit:] if min_id is not None else matching[:limit]
            body = [self._status_json(local, status) for local, status in page]
        links = []
        base = f"{self.url}{TAG_PATH}{quote(tag)}"
        common = {"limit": str(limit), **({"only_media": "true"} if only_media else {})}
        if len(page) == limit:
            links.append(f'<{base}?{urlencode({**common, "max_id": page[-1][0]})}>; rel="next"')
        if page:
            links.append(f'<{base}?{urlencode({**common, "min_id": page[0][0]})}>; rel="prev"')
        if links:
            headers = {**headers, "Link": ", ".join(links)}
        return Reply(200, body, headers)

    def _status_json(self, local: int, status: _Status) -> dict:
        remote = status.origin is not self
        acct = f"{status.username}@{status.origin.netloc}" if remote else status.username
        attachments = []
        for item in status.media:
            origin_url = f"{status.origin.media.url(item.path)}"
            url = self.media.url(f"/cache{item.path}") if remote else origin_url
            size = {"width": item.width, "height": item.height, "size": f"{item.width}x{item.height}"}
            attachments.append(
                {
                    "id": str(next(self._media_ids) + local),
                    "type": item.kind,
                    "url": url,
                    "preview_url": url,
                    "remote_url": origin_url if remote else None,
                    "meta": {"original": size, "small": size},
                    "description": item.description,
                    "blurhash": "UFGbd~00_3%M?bIURjRi00_3xaoz?bM{ofRi",
                }
            )
        return {
            "id": str(local),
            "created_at": _iso(status.created_at),
            "in_reply_to_id": None,
            "in_reply_to_account_id": None,
            "sensitive": status.sensitive,
            "spoiler_text": status.spoiler_text,
            "visibility": "public",
            "language": "en",
            "uri": status.uri,
            "url": status.url,
            "replies_count": 0,
            "reblogs_count": 0,
            "favourites_count": status.favourites,
            "edited_at": None,
            "content": status.content,
            "reblog": None,
            "account": {
                "id": str(abs(hash((status.origin.netloc, status.username))) % 10**17),
                "username": status.username,
                "acct": acct,
                "display_name": status.display_name,
                "locked": False,
                "bot": False,
                "created_at": "2024-01-01T00:00:00.000Z",
                "note": "",
                "url": f"https://{status.origin.netloc}/@{status.username}",
                "avatar": "",
                "avatar_static": "",
                "header": "",
                "header_static": "",
                "followers_count": 0,
                "following_count": 0,
                "statuses_count": 1,
                "emojis": [],
                "fields": [],
            },
            "media_attachments": attachments,
            "mentions": [],
            "tags": [{"name": tag, "url": f"https://{self.netloc}/tags/{tag}"} for tag in sorted(status.tags)],
            "emojis": [],
            "card": None,
            "poll": None,
        }
