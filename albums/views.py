from __future__ import annotations

import csv
import io
import tempfile
import zipfile
from collections.abc import Iterator
from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, Max, Q
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_cache_control
from django.utils.http import content_disposition_header, quote_etag
from django.views.decorators.http import require_GET, require_http_methods, require_POST, require_safe

from albums import pages, services
from albums.forms import AlbumAddForm, AlbumEditForm, AlbumSettingsForm
from albums.hashtags import normalize_hashtag
from albums.models import Album, Follower
from everhash.emails import absolute_url
from pictures.models import Picture
from pictures.storage import read_file

PAGE_SIZE = 60
POPULAR_SIZE = 7
FEED_SIZE = 50


class AlbumMissing(Http404):
    """An unknown (or hidden) hashtag: the 404 page offers to create the album."""

    def __init__(self, hashtag: str) -> None:
        super().__init__(f"There is no album for #{hashtag} yet.")
        self.hashtag = hashtag


def _album_or_404(request: HttpRequest, hashtag: str) -> Album:
    """The album a visitor may see: public ones, or unlisted ones with their secret link."""
    try:
        album = Album.objects.select_related("owner").get(hashtag=hashtag)
    except Album.DoesNotExist:
        raise AlbumMissing(hashtag) from None
    if album.visibility == Album.Visibility.PUBLIC or _can_manage(request, album):
        return album
    if request.GET.get("key") == album.secret:
        return album
    raise AlbumMissing(hashtag)


def _can_manage(request: HttpRequest, album: Album) -> bool:
    user = request.user
    return user.is_authenticated and (user.pk == album.owner_id or user.is_staff)


def _canonical(request: HttpRequest, hashtag: str, view: str, *args: str) -> tuple[str, HttpResponse | None]:
    """Normalise the hashtag in the URL; a non-canonical spelling redirects to the canonical URL."""
    try:
        canonical = normalize_hashtag(hashtag)
    except ValidationError as exc:
        raise Http404(f"#{hashtag} is not a hashtag: {exc.messages[0]}") from None
    if canonical != hashtag:
        query = f"?{request.GET.urlencode()}" if request.GET else ""
        return canonical, redirect(reverse(view, args=[canonical, *args]) + query, permanent=True)
    return canonical, None


def album_view(view_name: str):
    """Views of one album: a non-canonical hashtag redirects to `view_name`'s canonical URL, and
    an album the visitor may not see is a 404; the view gets the album instead of the hashtag."""

    def decorator(view):
        @wraps(view)
        def wrapper(request: HttpRequest, hashtag: str, **kwargs) -> HttpResponse:
            canonical, redirect_response = _canonical(request, hashtag, view_name, *kwargs.values())
            if redirect_response:
                return redirect_response
            return view(request, _album_or_404(request, canonical), **kwargs)

        return wrapper

    return decorator


def _key_query(request: HttpRequest, album: Album) -> str:
    """`key=...` to keep on links inside an unlisted album."""
    if album.visibility == Album.Visibility.UNLISTED and request.GET.get("key") == album.secret:
        return f"key={album.secret}"
    return ""


def _not_modified(request: HttpRequest, etag: str) -> HttpResponse | None:
    """304 for anonymous visitors whose copy is current. Signed-in people always get the page:
    it carries their CSRF token and messages, which a cached copy may not."""
    if request.user.is_authenticated:
        return None
    if etag in [tag.strip() for tag in request.headers.get("If-None-Match", "").split(",")]:
        response = HttpResponse(status=304)
        response["ETag"] = etag
        return response
    return None


def _cached(response: HttpResponse, etag: str) -> HttpResponse:
    response["ETag"] = etag
    patch_cache_control(response, no_cache=True)  # revalidate every time: cheap with the ETag
    return response


def _page_cache_key(request: HttpRequest, etag: str) -> str | None:
    """Anonymous visitors share rendered pages: the ETag already names everything they show
    (the album, its pictures' version, the day, the page). Signed-in people get their own."""
    if request.user.is_authenticated:
        return None
    return f"everhash:page:{request.get_host()}:{request.path}:{etag}"


def _from_page_cache(request: HttpRequest, etag: str) -> HttpResponse | None:
    key = _page_cache_key(request, etag)
    body = cache.get(key) if key else None
    return None if body is None else _cached(HttpResponse(body), etag)


def _to_page_cache(request: HttpRequest, etag: str, response: HttpResponse) -> HttpResponse:
    key = _page_cache_key(request, etag)
    if key and response.status_code == 200:
        cache.set(key, response.content, pages.CACHE_SECONDS)
    return _cached(response, etag)


def _og(request: HttpRequest, album: Album, *, title: str, description: str, path: str, cover: dict | None) -> dict:
    """OpenGraph/Twitter-card data with absolute URLs; the image is the collage or the top picture."""
    key_query = _key_query(request, album)
    return {
        "title": title,
        "description": description,
        "url": absolute_url(path + (f"?{key_query}" if key_query else "")),
        "image": absolute_url(cover["url"]) if cover else "",
        "width": cover["width"] if cover else "",
        "height": cover["height"] if cover else "",
    }


@require_safe
def index(request: HttpRequest) -> HttpResponse:
    week_ago = timezone.now() - timezone.timedelta(days=7)
    visible = Q(pictures__status=Picture.Status.VISIBLE)
    albums = (
        Album.objects.public()
        .select_related("collage")
        .annotate(
            picture_count=Count("pictures", filter=visible),
            recent_count=Count("pictures", filter=visible & Q(pictures__added_at__gte=week_ago)),
            last_added=Max("pictures__added_at", filter=visible),
        )
        .order_by("-recent_count", "-picture_count", "hashtag")
    )
    return render(request, "albums/index.html", {"albums": albums})


@require_safe
def go(request: HttpRequest) -> HttpResponse:
    """The index's "jump to a hashtag" box."""
    raw = request.GET.get("hashtag", "")
    try:
        hashtag = normalize_hashtag(raw)
    except ValidationError as exc:
        return render(request, "albums/index.html", {"albums": [], "go_error": exc.messages[0], "go_value": raw})
    return redirect("albums:album-detail", hashtag)


@require_safe
@album_view("albums:album-detail")
def album_detail(request: HttpRequest, album: Album) -> HttpResponse:
    order = request.GET.get("order", "newest")
    if order not in pages.ORDERS:
        order = "newest"
    page_number = request.GET.get("page", "1")
    fragment = request.GET.get("fragment") == "1"
    user = request.user
    following = user.is_authenticated and Follower.objects.filter(album=album, user=user).exists()
    etag = quote_etag(pages.album_etag(album=album, extra=f"{order}:{page_number}:{fragment}:{user.pk}:{following}"))
    if not_modified := _not_modified(request, etag):
        return not_modified
    if cached := _from_page_cache(request, etag):
        return cached

    paginator = Paginator(pages.visible_pictures(album, order), PAGE_SIZE)
    paginator.count = pages.visible_count(album=album)  # cached per album version
    page = paginator.get_page(page_number)
    context = {
        "album": album,
        "page": page,
        "order": order,
        "orders": pages.ORDERS,
        "key_query": _key_query(request, album),
        "is_manager": _can_manage(request, album),
        "following": following,
    }
    if fragment:
        return _to_page_cache(request, etag, render(request, "albums/_grid_items.html", context))
    count = page.paginator.count
    cover = pages.cover(album=album)
    context.update(
        count=count,
        progress=pages.milestone_progress(count),
        chart=pages.daily_chart(album=album),
        cover=cover,
        og=_og(
            request,
            album,
            title=album.display_title,
            description=f"{count} photos posted with #{album.hashtag}, collected by everhash.",
            path=album.get_absolute_url(),
            cover=cover,
        ),
    )
    return _to_page_cache(request, etag, render(request, "albums/album_detail.html", context))


@require_safe
@album_view("albums:popular")
def popular(request: HttpRequest, album: Album) -> HttpResponse:
    etag = quote_etag(pages.album_etag(album=album, extra="popular"))
    if not_modified := _not_modified(request, etag):
        return not_modified
    if cached := _from_page_cache(request, etag):
        return cached
    pictures = list(album.pictures.visible().most_liked()[:POPULAR_SIZE])
    context = {
        "album": album,
        "pictures": pictures,
        "key_query": _key_query(request, album),
        "og": _og(
            request,
            album,
            title=f"The most popular of {album.display_title}",
            description=f"The {POPULAR_SIZE} most liked photos posted with #{album.hashtag}.",
            path=reverse("albums:popular", args=[album.hashtag]),
            cover=pages.cover(album=album),
        ),
    }
    return _to_page_cache(request, etag, render(request, "albums/popular.html", context))


@require_safe
@album_view("albums:by-author")
def by_author(request: HttpRequest, album: Album, handle: str) -> HttpResponse:
    pictures = album.pictures.visible().filter(author_handle__iexact=handle).newest_first()
    page = Paginator(pictures, PAGE_SIZE).get_page(request.GET.get("page"))
    if not page.paginator.count:
        raise Http404(f"@{handle} has no pictures in #{album.hashtag}.")
    context = {
        "album": album,
        "page": page,
        "handle": page.object_list[0].author_handle,
        "author_name": page.object_list[0].author_name,
        "key_query": _key_query(request, album),
    }
    return render(request, "albums/by_author.html", context)


@require_safe
@album_view("albums:slideshow")
def slideshow(request: HttpRequest, album: Album) -> HttpResponse:
    try:
        interval = min(max(int(request.GET.get("interval", "8")), 1), 120)
        poll = min(max(int(request.GET.get("poll", "30")), 1), 600)
    except ValueError:
        interval, poll = 8, 30
    feed_url = reverse("albums:feed", args=[album.hashtag])
    key_query = _key_query(request, album)
    context = {
        "album": album,
        "feed_url": feed_url + (f"?{key_query}" if key_query else ""),
        "interval": interval,
        "poll": poll,
    }
    return render(request, "albums/slideshow.html", context)


def picture_json(picture: Picture) -> dict:
    large = picture.rendition("large") or picture.rendition("medium") or {}
    return {
        "id": picture.pk,
        "author_handle": picture.author_handle,
        "author_name": picture.author_name,
        "permalink": picture.permalink,
        "likes": picture.like_count,
        "posted_at": picture.posted_at.isoformat(),
        "added_at": picture.added_at.isoformat(),
        "alt": picture.alt,
        "url": absolute_url(picture.storage_url(large["key"])) if large else "",
        "width": large.get("width", picture.width),
        "height": large.get("height", picture.height),
    }


@require_safe
@album_view("albums:feed")
def feed(request: HttpRequest, album: Album) -> HttpResponse:
    """The slideshow's small JSON feed: the newest pictures, or those after `?after=<id>`."""
    etag = quote_etag(pages.album_etag(album=album, extra=f"feed:{request.GET.get('after', '')}"))
    if not_modified := _not_modified(request, etag):
        return not_modified
    pictures = album.pictures.visible().newest_first()
    after = request.GET.get("after", "")
    if after.isdigit():
        pictures = pictures.filter(id__gt=int(after))
    data = {"album": album.hashtag, "pictures": [picture_json(p) for p in pictures[:FEED_SIZE]]}
    return _cached(JsonResponse(data), etag)


class _ZipStream(io.RawIOBase):
    """A write-only file whose written bytes are collected and handed out in chunks."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.position = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.chunks.append(bytes(data))
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def drain(self) -> bytes:
        data = b"".join(self.chunks)
        self.chunks = []
        return data


def _zip_chunks(album: Album) -> Iterator[bytes]:
    """The album as a zip, produced file by file: memory stays constant whatever the album's size."""
    stream = _ZipStream()
    # The manifest grows with the album: it is spooled to disk, not kept in memory.
    manifest = tempfile.TemporaryFile("w+", newline="", encoding="utf-8")  # noqa: SIM115  (closed below)
    writer = csv.writer(manifest)
    writer.writerow(["file", "author", "author_name", "post", "likes", "posted_at", "added_at", "alt_text"])
    with zipfile.ZipFile(stream, "w", compression=zipfile.ZIP_STORED) as archive:
        for picture in album.pictures.visible().order_by("added_at", "id").iterator(chunk_size=500):
            extension = picture.original_key.rsplit(".", 1)[-1]
            name = f"{album.hashtag}/{picture.added_at:%Y%m%d-%H%M%S}-{picture.pk}.{extension}"
            # One original at a time (at most EVERHASH_MAX_IMAGE_BYTES). A missing file is left
            # out; a storage outage (StorageUnavailable) ends the stream: the zip is then visibly
            # incomplete rather than silently short.
            data = read_file(picture.original_key)
            if data is None:
                continue
            with archive.open(zipfile.ZipInfo(name, picture.added_at.timetuple()[:6]), "w") as target:
                for start in range(0, len(data), 256 * 1024):
                    target.write(data[start : start + 256 * 1024])
                    yield stream.drain()
            writer.writerow(
                [
                    name,
                    f"@{picture.author_handle}",
                    picture.author_name,
                    picture.permalink,
                    picture.like_count,
                    picture.posted_at.isoformat(),
                    picture.added_at.isoformat(),
                    picture.alt_text,
                ]
            )
            yield stream.drain()
        manifest.seek(0)
        with manifest, archive.open(f"{album.hashtag}/manifest.csv", "w") as target:
            while block := manifest.read(256 * 1024):
                target.write(block.encode("utf-8"))
                yield stream.drain()
    yield stream.drain()


@require_GET  # not HEAD: it would start reading every original for a zip nobody receives
@album_view("albums:download")
def download(request: HttpRequest, album: Album) -> HttpResponse:
    """The album's originals and a CSV manifest, as a streamed zip. Owner and staff only."""
    if not _can_manage(request, album):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        raise PermissionDenied("Only the album's owner can download it.")
    response = StreamingHttpResponse(_zip_chunks(album), content_type="application/zip")
    response["Content-Disposition"] = content_disposition_header(True, f"everhash-{album.hashtag}.zip")
    return response


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """The 404 page; for an unknown album it offers to create it."""
    context = {"message": exception.args[0] if exception.args else ""}
    if isinstance(exception, AlbumMissing):
        context["hashtag"] = exception.hashtag
        context["create_url"] = reverse("albums:album-add-confirm", args=[exception.hashtag])
    return render(request, "404.html", context, status=404)


# --- Owners: adding albums, following, the dashboard ------------------------------


def _managed_album_or_404(request: HttpRequest, hashtag: str) -> Album:
    """An album the signed-in user may change: theirs (or any, for staff). Anyone else: 404."""
    album = Album.objects.filter(hashtag=hashtag).select_related("owner").first()
    if album is None or not _can_manage(request, album):
        raise Http404("No such album among yours.")
    return album


@login_required
@require_http_methods(["GET", "POST"])
def add_album(request: HttpRequest) -> HttpResponse:
    """Step 1: name a hashtag."""
    form = AlbumAddForm(request.POST or request.GET or None)
    if form.is_bound and form.is_valid():
        return redirect("albums:album-add-confirm", form.cleaned_data["hashtag"])
    return render(request, "albums/add.html", {"form": form}, status=400 if form.errors else 200)


@login_required
@require_http_methods(["GET", "POST"])
def add_album_confirm(request: HttpRequest, hashtag: str) -> HttpResponse:
    """Step 2: confirm what will be followed; the POST creates the album, due for its first fetch."""
    try:
        canonical = normalize_hashtag(hashtag)
    except ValidationError as exc:
        return render(
            request, "albums/add.html", {"form": AlbumAddForm({"hashtag": hashtag}), "error": exc}, status=400
        )
    if canonical != hashtag:
        return redirect("albums:album-add-confirm", canonical)
    existing = Album.objects.filter(hashtag=canonical).first()
    if existing is not None and (existing.visibility == Album.Visibility.PUBLIC or _can_manage(request, existing)):
        messages.info(request, f"#{canonical} already has an album: follow it to get its milestone emails.")
        return redirect(existing)
    if request.method == "POST":
        if existing is not None:
            # An unlisted album of someone else: say no more than "taken".
            messages.error(request, f"#{canonical} is taken by an unlisted album.")
            return redirect("albums:album-add")
        try:
            album = services.create_album(owner=request.user, hashtag=canonical)
        except services.AlbumExists as exc:
            return redirect(exc.album)
        messages.success(request, f"Created #{album.hashtag}. The first pictures arrive with the next fetch.")
        return redirect("albums:dashboard")
    context = {
        "hashtag": canonical,
        "interval": settings.EVERHASH_FETCH_INTERVAL_MINUTES,
        "taken": existing is not None,
        "milestones": settings.EVERHASH_MILESTONES,
    }
    return render(request, "albums/add_confirm.html", context)


@login_required
@require_POST
def follow_album(request: HttpRequest, hashtag: str) -> HttpResponse:
    album = _album_or_404(request, hashtag)
    if request.POST.get("follow") == "0":
        services.unfollow(album=album, user=request.user)
        messages.success(request, f"You no longer follow #{album.hashtag}.")
    else:
        services.follow(album=album, user=request.user)
        messages.success(request, f"You follow #{album.hashtag}: its milestone emails come to you too.")
    return redirect(album.get_absolute_url() + (f"?{_key_query(request, album)}" if _key_query(request, album) else ""))


@login_required
@require_safe
def dashboard(request: HttpRequest) -> HttpResponse:
    visible = Q(pictures__status=Picture.Status.VISIBLE)
    owned = request.user.albums.annotate(picture_count=Count("pictures", filter=visible)).order_by("hashtag")
    followed = (
        Follower.objects.filter(user=request.user)
        .select_related("album")
        .annotate(picture_count=Count("album__pictures", filter=Q(album__pictures__status=Picture.Status.VISIBLE)))
        .order_by("album__hashtag")
    )
    return render(request, "albums/dashboard.html", {"owned": owned, "followed": followed})


@login_required
@require_POST
def album_action(request: HttpRequest, hashtag: str, action: str) -> HttpResponse:
    """The dashboard's buttons: pause, resume, rotate the secret link, email settings (owner or staff)."""
    album = _managed_album_or_404(request, hashtag)
    if action == "pause":
        services.set_fetching(album=album, active=False)
        messages.success(request, f"Fetching #{album.hashtag} is paused.")
    elif action == "resume":
        services.set_fetching(album=album, active=True)
        messages.success(request, f"Fetching #{album.hashtag} resumes with the next run.")
    elif action == "rotate-link":
        services.rotate_secret(album=album)
        messages.success(request, f"#{album.hashtag} has a new secret link; the old one no longer works.")
    elif action == "settings":
        form = AlbumSettingsForm(request.POST)
        if not form.is_valid():
            raise Http404("Unknown setting.")
        Album.objects.filter(pk=album.pk).update(
            visibility=form.cleaned_data["visibility"], owner_emails=form.cleaned_data["owner_emails"]
        )
        messages.success(request, f"Saved the settings of #{album.hashtag}.")
    else:
        raise Http404("Unknown action.")
    return redirect("albums:dashboard")


@login_required
@require_POST
def follower_emails(request: HttpRequest, hashtag: str) -> HttpResponse:
    wanted = request.POST.get("milestone_emails") == "on"
    updated = Follower.objects.filter(album__hashtag=hashtag, user=request.user).update(milestone_emails=wanted)
    if not updated:
        raise Http404("You do not follow this album.")
    messages.success(request, f"Saved your email settings for #{hashtag}.")
    return redirect("albums:dashboard")


@login_required
@require_http_methods(["GET", "POST"])
def edit_album(request: HttpRequest, hashtag: str) -> HttpResponse:
    album = _managed_album_or_404(request, hashtag)
    form = AlbumEditForm(request.POST or None, initial={"title": album.title, "description": album.description})
    if request.method == "POST" and form.is_valid():
        Album.objects.filter(pk=album.pk).update(**form.cleaned_data)
        messages.success(request, f"Saved #{album.hashtag}.")
        return redirect("albums:dashboard")
    return render(request, "albums/edit.html", {"album": album, "form": form})


@login_required
@require_http_methods(["GET", "POST"])
def delete_album(request: HttpRequest, hashtag: str) -> HttpResponse:
    album = _managed_album_or_404(request, hashtag)
    if request.method == "POST":
        services.delete_album(album=album)
        messages.success(request, f"Deleted #{hashtag} with its pictures.")
        return redirect("albums:dashboard")
    count = album.pictures.count()
    return render(request, "albums/delete_confirm.html", {"album": album, "count": count})
