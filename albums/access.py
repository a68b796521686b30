"""Getting an album for a request: the one helper every page, feed, zip, API view and link uses.

The rule itself lives on the model layer (`Album.objects.visible_to()`, `managed_by()`,
`Album.can_see()`, `can_manage()`); this module applies it to a request: the hashtag from the
URL (normalised; pages redirect a non-canonical spelling), the unlisted album's `?key=`, and a
404 that tells a stranger nothing. HTML views and the REST API share it (a DRF `Request` answers
`.GET` and `.user` like Django's), and translate the 404 into their own words.
"""

from __future__ import annotations

from functools import wraps

from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse

from albums.hashtags import normalize_hashtag
from albums.models import Album


class NotAHashtag(Http404):
    """The URL's hashtag cannot be one: `reason` says why."""

    def __init__(self, hashtag: str, reason: str) -> None:
        super().__init__(f"#{hashtag} is not a hashtag: {reason}")
        self.hashtag = hashtag
        self.reason = reason


class AlbumMissing(Http404):
    """An unknown hashtag, or an album the visitor may not see: the 404 page offers to create it."""

    def __init__(self, hashtag: str) -> None:
        super().__init__(f"There is no album for #{hashtag} yet.")
        self.hashtag = hashtag


def canonical_hashtag(raw: str) -> str:
    """The stored form of a hashtag from a URL; NotAHashtag (a 404) when it cannot be one."""
    try:
        return normalize_hashtag(raw)
    except ValidationError as exc:
        raise NotAHashtag(raw, " ".join(exc.messages)) from None


def request_key(request: HttpRequest) -> str | None:
    """The `?key=` the visitor came with (an unlisted album's secret link), if any."""
    return request.GET.get("key") or None


def album_for_request(request: HttpRequest, hashtag: str, queryset: QuerySet[Album] | None = None) -> Album:
    """The album of a URL's hashtag if the visitor may see it (Album.objects.visible_to), else AlbumMissing."""
    canonical = canonical_hashtag(hashtag)
    queryset = Album.objects.all() if queryset is None else queryset
    try:
        return queryset.visible_to(request.user, key=request_key(request)).get(hashtag=canonical)
    except Album.DoesNotExist:
        raise AlbumMissing(canonical) from None


def managed_album_for_request(request: HttpRequest, hashtag: str) -> Album:
    """An album the signed-in visitor may change (Album.objects.managed_by); a 404 for anyone else."""
    try:
        canonical = normalize_hashtag(hashtag)
    except ValidationError:
        raise Http404("No such album among yours.") from None
    album = Album.objects.managed_by(request.user).filter(hashtag=canonical).select_related("owner").first()
    if album is None:
        raise Http404("No such album among yours.")
    return album


def link_key(request: HttpRequest, album: Album) -> str | None:
    """The key to carry on links inside the album: the visitor's `?key=` when it is the album's secret."""
    return album.link_key(request_key(request))


def key_query(request: HttpRequest, album: Album) -> str:
    """`key=...` to keep on links inside an unlisted album ("" otherwise)."""
    key = link_key(request, album)
    return f"key={key}" if key else ""


def album_view(view_name: str):
    """Pages of one album: a non-canonical hashtag redirects (301) to `view_name`'s canonical URL,
    an album the visitor may not see is a 404; the view gets the album instead of the hashtag."""

    def decorator(view):
        @wraps(view)
        def wrapper(request: HttpRequest, hashtag: str, **kwargs) -> HttpResponse:
            canonical = canonical_hashtag(hashtag)
            if canonical != hashtag:
                query = f"?{request.GET.urlencode()}" if request.GET else ""
                return redirect(reverse(view_name, args=[canonical, *kwargs.values()]) + query, permanent=True)
            queryset = Album.objects.select_related("owner")
            return view(request, album_for_request(request, canonical, queryset), **kwargs)

        return wrapper

    return decorator
