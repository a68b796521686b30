from __future__ import annotations

import mimetypes
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, F, Q
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import patch_cache_control
from django.utils.http import content_disposition_header, quote_etag
from django.views.decorators.http import require_GET, require_http_methods, require_POST, require_safe

from albums import pages, services, wall
from albums.access import (
    AlbumMissing,
    album_for_request,
    album_view,
    canonical_hashtag,
    key_query,
    managed_album_for_request,
)
from albums.forms import AlbumAddForm, AlbumEditForm, AlbumSettingsForm
from albums.hashtags import normalize_hashtag, normalize_new_hashtag
from albums.models import Album, Follower
from everhash.emails import absolute_url
from everhash.lib.caching import Conditional, cache_key
from everhash.lib.qr import qr_svg
from pictures import moderation
from pictures import services as picture_services
from pictures.models import Picture
from pictures.storage import read_file
from users.services import check_user_rate_limit, wait_message

PAGE_SIZE = 60
# The index and each list of the dashboard: a page stays small whatever the number of albums.
INDEX_PAGE_SIZE = 48
DASHBOARD_PAGE_SIZE = 50
POPULAR_SIZE = 7
FEED_SIZE = 50


def _conditional(
    request: HttpRequest, etag: str, *, share: bool = True, content_type: str | None = None
) -> Conditional:
    """Album pages' conditional GET and page cache. Anonymous visitors share rendered pages: the ETag
    already names everything they show (the album, its pictures' version, the day, the page).
    Signed-in people always get the page: it carries their CSRF token and messages, which a
    shared or cached copy may not (no 304, no shared body)."""
    anonymous = not request.user.is_authenticated
    key = cache_key("page", request.get_host(), request.path, etag) if anonymous and share else None
    return Conditional(
        request, etag=etag, key=key, seconds=pages.CACHE_SECONDS, not_modified=anonymous, content_type=content_type
    )


def _og(request: HttpRequest, album: Album, *, title: str, description: str, path: str, cover: dict | None) -> dict:
    """OpenGraph/Twitter-card data with absolute URLs; the image is the collage or the top picture."""
    query = key_query(request, album)
    return {
        "title": title,
        "description": description,
        "url": absolute_url(path + (f"?{query}" if query else "")),
        "image": absolute_url(cover["url"]) if cover else "",
        "width": cover["width"] if cover else "",
        "height": cover["height"] if cover else "",
    }


def _index_page(request: HttpRequest):
    return Paginator(pages.listed_albums(), INDEX_PAGE_SIZE).get_page(request.GET.get("page", "1"))


@require_safe
def index(request: HttpRequest) -> HttpResponse:
    page_number = request.GET.get("page", "1")
    conditional = _conditional(request, quote_etag(pages.index_etag(extra=page_number)))
    if answered := conditional.answer():
        return answered
    page = _index_page(request)
    return conditional.finish(render(request, "albums/index.html", {"albums": page.object_list, "page": page}))


@require_safe
def go(request: HttpRequest) -> HttpResponse:
    """The index's "jump to a hashtag" box."""
    raw = request.GET.get("hashtag", "")
    try:
        hashtag = normalize_hashtag(raw)
    except ValidationError as exc:
        # The list stays: the visitor may pick an album instead of fixing the hashtag.
        page = _index_page(request)
        context = {"albums": page.object_list, "page": page, "go_error": exc.messages[0], "go_value": raw}
        return render(request, "albums/index.html", context)
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
    conditional = _conditional(request, etag)
    if answered := conditional.answer():
        return answered

    paginator = Paginator(pages.visible_pictures(album, order), PAGE_SIZE)
    paginator.count = album.visible_count  # kept on the album (albums.services.pictures_changed)
    page = paginator.get_page(page_number)
    context = {
        "album": album,
        "page": page,
        "order": order,
        "orders": pages.ORDERS,
        "key_query": key_query(request, album),
        "is_manager": album.can_manage(request.user),
        "following": following,
    }
    if context["is_manager"] and not fragment:
        context["pending_count"] = album.pictures.filter(status=Picture.Status.PENDING).count()
    if fragment:
        return conditional.finish(render(request, "albums/_grid_items.html", context))
    count = page.paginator.count
    cover = pages.cover(album=album)
    if not count:
        context["search"] = pages.search_report(album=album)
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
    return conditional.finish(render(request, "albums/album_detail.html", context))


@require_safe
@album_view("albums:popular")
def popular(request: HttpRequest, album: Album) -> HttpResponse:
    etag = quote_etag(pages.album_etag(album=album, extra="popular"))
    conditional = _conditional(request, etag)
    if answered := conditional.answer():
        return answered
    pictures = list(album.pictures.visible().most_liked()[:POPULAR_SIZE])
    context = {
        "album": album,
        "pictures": pictures,
        "key_query": key_query(request, album),
        "og": _og(
            request,
            album,
            title=f"Most popular in {album.display_title}",
            description=f"The {POPULAR_SIZE} most liked photos posted with #{album.hashtag}.",
            path=reverse("albums:popular", args=[album.hashtag]),
            cover=pages.cover(album=album),
        ),
    }
    return conditional.finish(render(request, "albums/popular.html", context))


@require_safe
@album_view("albums:by-author")
def by_author(request: HttpRequest, album: Album, handle: str) -> HttpResponse:
    page_number = request.GET.get("page", "1")
    fragment = request.GET.get("fragment", "")
    extra = f"author:{handle}:{page_number}:{fragment}:{request.user.pk}"
    etag = quote_etag(pages.album_etag(album=album, extra=extra))
    conditional = _conditional(request, etag)
    if answered := conditional.answer():
        return answered
    page = Paginator(pages.author_pictures(album=album, handle=handle), PAGE_SIZE).get_page(page_number)
    if not page.paginator.count:
        raise Http404(f"@{handle} has no pictures in #{album.hashtag}.")
    context = {
        "album": album,
        "page": page,
        "handle": page.object_list[0].author_handle,
        "author_name": page.object_list[0].author_name,
        "key_query": key_query(request, album),
        "is_manager": album.can_manage(request.user),
    }
    if request.GET.get("fragment") == "1":  # the next page's cards, for infinite scroll and the lightbox
        return conditional.finish(render(request, "albums/_grid_items.html", context))
    return conditional.finish(render(request, "albums/by_author.html", context))


def _visible_picture_or_404(album: Album, picture_id: int) -> Picture:
    picture = album.pictures.visible().filter(pk=picture_id).first()
    if picture is None:
        raise Http404(f"#{album.hashtag} has no such picture (it may have been hidden).")
    return picture


@require_safe
@album_view("albums:picture")
def picture_page(request: HttpRequest, album: Album, picture_id: int) -> HttpResponse:
    """One picture: large, with its attribution, a link to the post, a download and share tags."""
    etag = quote_etag(pages.album_etag(album=album, extra=f"picture:{picture_id}"))
    conditional = _conditional(request, etag)
    if answered := conditional.answer():
        return answered
    picture = _visible_picture_or_404(album, picture_id)
    newer, older = pages.neighbours(picture)
    share = picture.rendition("medium") or picture.rendition("large")
    who = picture.author_name or f"@{picture.author_handle}"
    context = {
        "album": album,
        "picture": picture,
        "newer": newer,
        "older": older,
        "key_query": key_query(request, album),
        "og": _og(
            request,
            album,
            title=f"Photo by {who} in {album.display_title}",
            description=picture.alt_text or f"Posted with #{album.hashtag}, collected by everhash.",
            path=reverse("albums:picture", args=[album.hashtag, picture.pk]),
            cover={"url": picture.storage_url(share["key"]), "width": share["width"], "height": share["height"]}
            if share
            else None,
        ),
    }
    return conditional.finish(render(request, "albums/picture.html", context))


@require_GET
@album_view("albums:picture-download")
def picture_download(request: HttpRequest, album: Album, picture_id: int) -> HttpResponse:
    """The picture's large rendition as a file to save (its storage may be on another origin,
    where a link's `download` attribute is ignored)."""
    picture = _visible_picture_or_404(album, picture_id)
    large = picture.rendition("large") or {"key": picture.original_key}
    data = read_file(large["key"])
    if data is None:
        raise Http404("The picture's file is missing.")
    filename = f"everhash-{album.hashtag}-{picture.pk}.{large['key'].rsplit('.', 1)[-1].lower()}"
    response = HttpResponse(data, content_type=mimetypes.guess_type(filename)[0] or "application/octet-stream")
    response["Content-Disposition"] = content_disposition_header(True, filename)
    return response


QR_TARGETS = {"album": "albums:album-detail", "wall": "albums:slideshow"}


@require_safe
@album_view("albums:qr")
def qr_code(request: HttpRequest, album: Album) -> HttpResponse:
    """A QR code (SVG) of the album's page, or of its wall with `?for=wall`, to print or put on a
    screen. An unlisted album's code carries its secret link: whoever reached this has it (or owns it)."""
    target = request.GET.get("for", "album")
    if target not in QR_TARGETS:
        raise Http404("A QR code is for the album or for its wall (?for=wall).")
    url = album.with_key(absolute_url(reverse(QR_TARGETS[target], args=[album.hashtag])))
    title = f"QR code of the {'wall' if target == 'wall' else 'album'} {album.display_title}: {url}"
    response = HttpResponse(qr_svg(url, title=title), content_type="image/svg+xml")
    patch_cache_control(response, private=True, max_age=3600)
    return response


@require_safe
@album_view("albums:slideshow")
def slideshow(request: HttpRequest, album: Album) -> HttpResponse:
    try:
        interval = min(max(int(request.GET.get("interval", "8")), 1), 120)
        poll = min(max(int(request.GET.get("poll", "2")), 1), 600)
    except ValueError:
        interval, poll = 8, 2
    feed_url = reverse("albums:feed", args=[album.hashtag])
    query = key_query(request, album)
    context = {
        "album": album,
        "feed_url": feed_url + (f"?{query}" if query else ""),
        "interval": interval,
        "poll": poll,
    }
    response = render(request, "albums/slideshow.html", context)
    if ancestors := album.frame_ancestors:
        # The owner's sites may show the wall in a frame: the CSP names them (everhash/middleware.py),
        # and X-Frame-Options, which cannot name an origin, steps aside.
        response.frame_ancestors = ancestors
        response.xframe_options_exempt = True
    return response


@require_safe
@album_view("albums:feed")
def feed(request: HttpRequest, album: Album) -> HttpResponse:
    """The event wall's JSON feed (albums/wall.py): the first page, `?before=<cursor>` for the
    next, `?since=<journal>` for what changed, `?visible=<ids>` for which are still shown;
    `?after=<id>`, the newest pictures after an id, is kept for older clients.

    Conditional for everyone (it carries nothing personal): an unchanged album answers 304, and
    the body is shared from the cache, since every screen showing the wall asks the same."""
    etag = quote_etag(pages.album_etag(album=album, extra=f"feed:{request.GET.urlencode()}"))
    key = cache_key("feed", request.get_host(), request.path, etag)
    conditional = Conditional(request, etag=etag, key=key, seconds=pages.CACHE_SECONDS, content_type="application/json")
    if answered := conditional.answer():
        return answered
    params = request.GET
    data: dict = {"album": album.hashtag, "version": album.pictures_version}
    if "visible" in params:
        data["visible"] = wall.still_visible(album=album, ids=wall.parse_ids(params["visible"]))
    elif params.get("after", "").isdigit():
        pictures = album.pictures.visible().newest_first().filter(id__gt=int(params["after"]))
        data["pictures"] = [wall.picture_json(p) for p in pictures[:FEED_SIZE]]
    else:
        data.update(wall.page(album=album, before=params.get("before", "")))
        if params.get("since", "").isdigit():
            data["joined"] = wall.joined_since(album=album, since=int(params["since"]))
        if "before" not in params:
            data["journal"] = wall.journal_position(album=album)
    return conditional.finish(JsonResponse(data))


@require_GET  # not HEAD: it would start reading every original for a zip nobody receives
@album_view("albums:download")
def download(request: HttpRequest, album: Album) -> HttpResponse:
    """The album's originals and a CSV manifest, as a streamed zip. Owner and staff only."""
    if not album.can_manage(request.user):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        raise PermissionDenied("Only the album's owner can download it.")
    response = StreamingHttpResponse(picture_services.album_zip(album=album), content_type="application/zip")
    response["Content-Disposition"] = content_disposition_header(True, f"everhash-{album.hashtag}.zip")
    return response


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """The 404 page; for an unknown album it offers to create it. Never the exception's text (URL
    resolver dumps, paths): with DEBUG off the page says only that nothing is here."""
    context = {}
    if isinstance(exception, AlbumMissing):
        context["hashtag"] = exception.hashtag
        context["create_url"] = reverse("albums:album-add-confirm", args=[exception.hashtag])
    return render(request, "404.html", context, status=404)


# --- Owners: adding albums, following, the dashboard ------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def add_album(request: HttpRequest) -> HttpResponse:
    """Step 1: name a hashtag."""
    form = AlbumAddForm(request.POST or request.GET or None)
    if form.is_bound and form.is_valid():
        return _confirm_redirect(form.cleaned_data["hashtag"], written=form.data["hashtag"])
    return render(request, "albums/add.html", {"form": form}, status=400 if form.errors else 200)


def _confirm_redirect(canonical: str, *, written: str) -> HttpResponse:
    url = reverse("albums:album-add-confirm", args=[canonical])
    return redirect(f"{url}?{urlencode({'as': written})}" if written != canonical else url)


@login_required
@require_http_methods(["GET", "POST"])
def add_album_confirm(request: HttpRequest, hashtag: str) -> HttpResponse:
    """Step 2: confirm what will be followed; the POST creates the album, due for its first fetch."""
    try:
        canonical = normalize_new_hashtag(hashtag)
    except ValidationError as exc:
        return render(
            request, "albums/add.html", {"form": AlbumAddForm({"hashtag": hashtag}), "error": exc}, status=400
        )
    # The hashtag as written (#Straße) is what sources search; the album's key is folded (strasse).
    written = request.GET.get("as") or hashtag
    if canonical != hashtag:
        return _confirm_redirect(canonical, written=written)
    existing = Album.objects.filter(hashtag=canonical).first()
    if existing is not None and existing.can_see(request.user):
        messages.info(request, f"#{canonical} already has an album: follow it to get its milestone emails.")
        return redirect(existing)
    if request.method == "POST":
        if existing is not None:
            # An unlisted album of someone else: say no more than "taken".
            messages.error(request, f"#{canonical} is taken by an unlisted album.")
            return redirect("albums:album-add")
        if wait := check_user_rate_limit(scope="album_create", user=request.user):
            messages.error(request, wait_message(wait, what="new albums"))
            return redirect("albums:album-add")
        try:
            album = services.create_album(owner=request.user, hashtag=canonical, written=written)
        except services.AlbumExists as exc:
            return redirect(exc.album)
        except services.QuotaReached as exc:
            messages.error(request, str(exc))
            return redirect("albums:album-add")
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
    if request.POST.get("follow") == "0":
        # Leaving always works, even an album one may no longer see (its link was rotated).
        if followed := services.unfollow_hashtag(hashtag=canonical_hashtag(hashtag), user=request.user):
            messages.success(request, f"You no longer follow #{followed}.")
        return redirect("albums:dashboard")
    album = album_for_request(request, hashtag)
    try:
        services.follow(album=album, user=request.user)
    except services.QuotaReached as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"You follow #{album.hashtag}: its milestone emails come to you too.")
    query = key_query(request, album)
    return redirect(album.get_absolute_url() + (f"?{query}" if query else ""))


@login_required
@require_safe
def dashboard(request: HttpRequest) -> HttpResponse:
    waiting = Q(pending_media__state="waiting")  # photos fetch_tweets will try to download again
    # The visible count is kept on the album; the approval queue is counted along its index
    # (a join over every picture row took as long as the album was big).
    owned = (
        request.user.albums.annotate(
            picture_count=F("visible_count"),
            pending_photos=Count("pending_media", filter=waiting),
            pending_count=Picture.objects.count_per_album(status=Picture.Status.PENDING),
        )
        .prefetch_related("sources")  # each album's sources and what they last found
        .order_by("hashtag")
    )
    followed = (
        Follower.objects.filter(user=request.user)
        .select_related("album")
        .annotate(picture_count=F("album__visible_count"))
        .order_by("album__hashtag")
    )
    context = {
        "owned": Paginator(owned, DASHBOARD_PAGE_SIZE).get_page(request.GET.get("owned")),
        "followed": Paginator(followed, DASHBOARD_PAGE_SIZE).get_page(request.GET.get("followed")),
    }
    return render(request, "albums/dashboard.html", context)


@login_required
@require_POST
def album_action(request: HttpRequest, hashtag: str, action: str) -> HttpResponse:
    """The dashboard's buttons: pause, resume, rotate the secret link, email settings (owner or staff)."""
    album = managed_album_for_request(request, hashtag)
    if action == "pause":
        moderation.pause(albums=Album.objects.filter(pk=album.pk), by=request.user)
        messages.success(request, f"Fetching #{album.hashtag} is paused.")
    elif action == "resume":
        moderation.resume(albums=Album.objects.filter(pk=album.pk), by=request.user)
        messages.success(request, f"Fetching #{album.hashtag} resumes when it is next due.")
    elif action == "rotate-link":
        _, dropped = services.rotate_secret(album=album)
        ended = (
            f" {dropped} follower{'s' if dropped != 1 else ''} no longer see{'s' if dropped == 1 else ''} it."
            if dropped
            else ""
        )
        messages.success(request, f"#{album.hashtag} has a new secret link; the old one no longer works.{ended}")
    elif action == "moderation":
        mode = request.POST.get("moderation")
        if mode not in Album.Moderation.values:
            raise Http404("Unknown moderation.")
        Album.objects.filter(pk=album.pk).update(moderation=mode)
        messages.success(
            request,
            f"New pictures of #{album.hashtag} wait for your approval."
            if mode == Album.Moderation.APPROVE_FIRST
            else f"New pictures of #{album.hashtag} are shown at once.",
        )
        return redirect(
            request.POST.get("next") if request.POST.get("next") == album.get_absolute_url() else "albums:dashboard"
        )
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
    album = managed_album_for_request(request, hashtag)
    initial = {"title": album.title, "description": album.description, "frame_origins": album.frame_origins}
    form = AlbumEditForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        Album.objects.filter(pk=album.pk).update(**form.cleaned_data)
        messages.success(request, f"Saved #{album.hashtag}.")
        return redirect("albums:dashboard")
    return render(request, "albums/edit.html", {"album": album, "form": form})


@login_required
@require_http_methods(["GET", "POST"])
def delete_album(request: HttpRequest, hashtag: str) -> HttpResponse:
    album = managed_album_for_request(request, hashtag)
    if request.method == "POST":
        picture_services.delete_album(album=album)
        messages.success(request, f"Deleted #{hashtag} with its pictures.")
        return redirect("albums:dashboard")
    count = album.pictures.count()
    return render(request, "albums/delete_confirm.html", {"album": album, "count": count})
