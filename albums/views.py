from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from albums.hashtags import normalize_hashtag
from albums.models import Album
from pictures.models import Picture

PAGE_SIZE = 60


def _album_or_404(request: HttpRequest, hashtag: str) -> Album:
    """The album a visitor may see: public ones, or unlisted ones with their secret link."""
    try:
        album = Album.objects.select_related("owner").get(hashtag=hashtag)
    except Album.DoesNotExist:
        raise Http404("No album for this hashtag yet.") from None
    if album.visibility == Album.Visibility.PUBLIC:
        return album
    if request.GET.get("key") == album.secret:
        return album
    if request.user.is_authenticated and (request.user == album.owner or request.user.is_staff):
        return album
    raise Http404("No album for this hashtag yet.")


def index(request: HttpRequest) -> HttpResponse:
    albums = (
        Album.objects.public()
        .annotate(picture_count=Count("pictures", filter=Q(pictures__status=Picture.Status.VISIBLE)))
        .order_by("-last_success_at", "hashtag")
    )
    return render(request, "albums/index.html", {"albums": albums})


def album_detail(request: HttpRequest, hashtag: str) -> HttpResponse:
    try:
        canonical = normalize_hashtag(hashtag)
    except ValidationError:
        raise Http404("This is not a hashtag.") from None
    if canonical != hashtag:
        query = f"?{request.GET.urlencode()}" if request.GET else ""
        return redirect(reverse("albums:album-detail", args=[canonical]) + query, permanent=True)

    album = _album_or_404(request, canonical)
    pictures = album.pictures.visible().newest_first()
    page = Paginator(pictures, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "albums/album_detail.html", {"album": album, "page": page})
