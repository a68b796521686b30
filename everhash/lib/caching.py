"""Conditional GET and the rendered-page cache: the one helper album pages, the slideshow feed and
the REST API use. Built on Django's own tools (`django.utils.cache`).

Two ways to know a response's validator, one way to answer:
- **before rendering** (album pages, the feed): the caller computes the ETag from what the page
  shows (albums.pages.album_etag: the album's fields, its `pictures_version`, the day, the signed
  URL window) and `Conditional.answer()` gives the 304 or the cached body without rendering;
- **after rendering** (the API): the ETag is a hash of the body (`finish()` with `etag=None`).
Either way `finish()` stores the body under the cache key (when there is one) and marks the
response `Cache-Control: no-cache` (revalidate every time: cheap with the ETag).

Cache keys carry everything the body depends on (the album's version, the signed-URL window,
the URL), so an entry is never invalidated: a change moves the key on and the old entry expires.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.utils.cache import get_conditional_response, patch_cache_control, patch_vary_headers, set_response_etag


def cache_key(prefix: str, *parts: object) -> str:
    """A cache key from the things a cached body depends on (hashed: URLs may be long)."""
    return f"everhash:{prefix}:{hashlib.sha256(repr(parts).encode()).hexdigest()}"


@dataclass
class Conditional:
    """One request's conditional-GET and page-cache decisions.

    `etag`: the validator when known before rendering (quoted), else None (hashed from the body).
    `key`: where the rendered body is shared between requests, None for no sharing.
    `seconds`: how long a stored body lives.
    `vary`: request headers the body depends on (the API: who is asking).
    """

    request: HttpRequest
    etag: str | None = None
    key: str | None = None
    seconds: int = 300
    content_type: str | None = None
    vary: tuple[str, ...] = ()
    revalidate: bool = True
    not_modified: bool = True

    def answer(self) -> HttpResponse | None:
        """Without rendering: 304 when the caller's copy is current, or the stored body; else None."""
        if self.etag is not None and self.not_modified:
            not_modified = get_conditional_response(self.request, etag=self.etag)
            if not_modified is not None:
                return self._headers(not_modified)
        body = cache.get(self.key) if self.key else None
        if body is None:
            return None
        kwargs = {"content_type": self.content_type} if self.content_type else {}
        return self.finish(HttpResponse(body, **kwargs), store=False)

    def finish(self, response: HttpResponse, *, store: bool = True) -> HttpResponse:
        """The rendered response: stored for the next request, with its ETag, answered 304 when
        the caller has it already (ETag from the body)."""
        if response.status_code != 200 or self.request.method not in ("GET", "HEAD"):
            return response
        if hasattr(response, "render") and not getattr(response, "is_rendered", True):
            response.render()
        if store and self.key:
            cache.set(self.key, response.content, self.seconds)
        if self.etag is None:
            set_response_etag(response)
            return self._headers(get_conditional_response(self.request, etag=response["ETag"], response=response))
        return self._headers(response)

    def _headers(self, response: HttpResponse) -> HttpResponse:
        if self.etag is not None:
            response["ETag"] = self.etag
        if self.vary:
            patch_vary_headers(response, self.vary)
        if self.revalidate:
            patch_cache_control(response, no_cache=True)
        return response
