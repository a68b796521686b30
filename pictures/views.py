"""The album owner's tools: hide, unhide, approve a picture, ban its author from the album.

Owners and staff only; everyone else gets a 404, as if the album's pictures had no such page.
The work is done by pictures/moderation.py, the same functions as the admin's.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import pluralize
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from albums.access import managed_album_for_request, request_key
from albums.models import Album
from pictures import moderation
from pictures.models import BlockedAuthor, BlockedWord, Picture
from pictures.storage import content_type, private_url, read_file

PAGE_SIZE = 60


def _picture(album: Album, picture_id: int) -> Picture:
    return get_object_or_404(Picture, pk=picture_id, album=album)


def _hidden_url(album: Album) -> str:
    return reverse("pictures:hidden", args=[album.hashtag])


# What each single-picture button does: the service, the message, and where to go back to.
PICTURE_ACTIONS = {
    "hide": (moderation.hide, "is hidden", "album"),
    "unhide": (moderation.unhide, "is shown again", "hidden"),
    "approve": (moderation.approve, "is approved", "hidden"),
}


@require_POST
def picture_action(request: HttpRequest, hashtag: str, picture_id: int, action: str) -> HttpResponse:
    album = managed_album_for_request(request, hashtag)
    picture = _picture(album, picture_id)
    service, done, back = PICTURE_ACTIONS[action]
    if service(pictures=Picture.objects.filter(pk=picture.pk), by=request.user):
        messages.success(request, f"The picture by @{picture.author_handle} {done}.")
    return redirect(album if back == "album" else _hidden_url(album))


@require_http_methods(["GET", "POST"])
def ban_author(request: HttpRequest, hashtag: str, picture_id: int) -> HttpResponse:
    """GET asks for confirmation, saying how many pictures the ban hides; POST bans."""
    album = managed_album_for_request(request, hashtag)
    picture = _picture(album, picture_id)
    if request.method == "GET":
        count = moderation.pictures_a_ban_hides(
            source=picture.source, handle=picture.author_handle, album=album
        ).count()
        return render(request, "pictures/ban_confirm.html", {"album": album, "picture": picture, "count": count})
    _, hidden = moderation.ban_author(source=picture.source, handle=picture.author_handle, album=album, by=request.user)
    messages.success(
        request,
        f"@{picture.author_handle} is banned from #{album.hashtag}: {hidden} picture{'' if hidden == 1 else 's'} "
        "hidden, and their new posts will be skipped.",
    )
    return redirect(album)


@require_POST
def unban_author(request: HttpRequest, hashtag: str, block_id: int) -> HttpResponse:
    album = managed_album_for_request(request, hashtag)
    block = get_object_or_404(BlockedAuthor, pk=block_id, album=album)
    # Read before the ban goes: the pictures it hid, to show again in the same step if asked.
    hid = moderation.pictures_a_ban_hid(source=block.source, handle=block.handle, album=album)
    hid = list(hid.values_list("pk", flat=True))
    moderation.unban_author(source=block.source, handle=block.handle, album=album, by=request.user)
    if request.POST.get("show_again") == "on" and hid:
        shown = moderation.unhide(pictures=Picture.objects.filter(pk__in=hid), by=request.user)
        messages.success(
            request,
            f"@{block.handle} may appear in #{album.hashtag} again; {shown} picture{pluralize(shown)} shown again.",
        )
    else:
        messages.success(
            request, f"@{block.handle} may appear in #{album.hashtag} again (hidden pictures stay hidden)."
        )
    return redirect(_hidden_url(album))


@require_safe
def hidden(request: HttpRequest, hashtag: str) -> HttpResponse:
    """The album's hidden and pending pictures, to show again or approve, and the authors banned from it."""
    album = managed_album_for_request(request, hashtag)
    status = request.GET.get("status", Picture.Status.HIDDEN)
    if status not in (Picture.Status.HIDDEN, Picture.Status.PENDING):
        status = Picture.Status.HIDDEN
    pictures = album.pictures.filter(status=status).newest_first()
    page = Paginator(pictures, PAGE_SIZE).get_page(request.GET.get("page"))
    counts = dict(
        album.pictures.exclude(status=Picture.Status.VISIBLE).order_by().values_list("status").annotate(n=Count("id"))
    )
    context = {
        "album": album,
        "page": page,
        "status": status,
        "hidden_count": counts.get(Picture.Status.HIDDEN, 0),
        "pending_count": counts.get(Picture.Status.PENDING, 0),
        "banned": [
            (block, moderation.pictures_a_ban_hid(source=block.source, handle=block.handle, album=album).count())
            for block in BlockedAuthor.objects.filter(album=album).order_by("handle")
        ],
        "blocked_words": BlockedWord.objects.filter(album=album).order_by("word"),
    }
    return render(request, "pictures/hidden.html", context)


@require_POST
def block_word(request: HttpRequest, hashtag: str) -> HttpResponse:
    """The owner's own blocked words: new posts containing one are skipped or held (album setting)."""
    album = managed_album_for_request(request, hashtag)
    try:
        blocked = moderation.block_word(word=request.POST.get("word", ""), album=album, by=request.user)
    except moderation.ModerationError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request, f"New posts with “{blocked.word}” are {album.get_blocked_words_action_display().lower()}."
        )
    return redirect(_hidden_url(album))


@require_POST
def unblock_word(request: HttpRequest, hashtag: str, word_id: int) -> HttpResponse:
    album = managed_album_for_request(request, hashtag)
    blocked = get_object_or_404(BlockedWord, pk=word_id, album=album)
    moderation.unblock_word(word=blocked.word, album=album, by=request.user)
    messages.success(request, f"“{blocked.word}” is no longer blocked in #{album.hashtag}.")
    return redirect(_hidden_url(album))


# Seconds a browser may keep an original: a picture hidden since is not shown for longer than this.
ORIGINAL_MAX_AGE = 300


@require_safe
def original(request: HttpRequest, picture_id: int) -> HttpResponse:
    """A picture's original, for whoever may see the picture right now: originals have no public
    address (docs/storage.md). The album's access rule (Album.can_see, with the visitor's `?key=`),
    and a hidden or pending picture only for the album's owner and staff; a 404 for anyone else.
    On S3, a redirect to a signed URL valid a few minutes; a local file is sent from here."""
    picture = get_object_or_404(Picture.objects.select_related("album"), pk=picture_id)
    album = picture.album
    if not album.can_see(request.user, request_key(request)):
        raise Http404("No such picture.")
    if picture.status != Picture.Status.VISIBLE and not album.can_manage(request.user):
        raise Http404("No such picture.")
    signed = private_url(picture.original_key, seconds=ORIGINAL_MAX_AGE)
    if signed is not None:
        response = redirect(signed)
    else:
        data = read_file(picture.original_key)
        if data is None:
            raise Http404("No such picture.")
        response = HttpResponse(data, content_type=content_type(picture.original_key))
    response["Cache-Control"] = f"private, max-age={ORIGINAL_MAX_AGE}"
    return response
