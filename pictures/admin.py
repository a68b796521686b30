"""Moderation in the admin: pictures (bulk actions and the fast review grid), block lists, takedowns, the log.

Every change goes through pictures/moderation.py, which writes the audit log and marks
collages stale. Post data (names, text, alt text) is untrusted: it reaches the page only
through format_html or the template engine's escaping.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from albums.models import Album
from everhash.lib.admin import ReadOnlyAdmin
from pictures import moderation
from pictures.models import (
    BlockedAuthor,
    BlockedWord,
    DeletedMedia,
    ModerationAction,
    Picture,
    Takedown,
    normalize_handle,
)

# Pending pictures shown at once in the review grid (the oldest first).
REVIEW_BATCH = 60


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


class AuthorFilter(admin.SimpleListFilter):
    """By author: the most frequent authors of the album being filtered; any author through ?author=."""

    title = "author"
    parameter_name = "author"

    def lookups(self, request, model_admin):
        album_id = request.GET.get("album__id__exact", "")
        choices = []
        if album_id.isdigit():
            # Along picture_author_idx (album, author_handle).
            rows = (
                Picture.objects.filter(album_id=int(album_id))
                .values("author_handle")
                .annotate(n=Count("id"))
                .order_by("-n", "author_handle")[:20]
            )
            choices = [(row["author_handle"], f"@{row['author_handle']} ({row['n']})") for row in rows]
        value = self.value()
        if value and value not in {handle for handle, _ in choices}:
            choices.append((value, f"@{value}"))
        return choices

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(author_handle__iexact=normalize_handle(self.value()))
        return queryset


class PictureForm(forms.ModelForm):
    class Meta:
        model = Picture
        fields = ["status"]

    def clean_status(self) -> str:
        status = self.cleaned_data["status"]
        if status == Picture.Status.PENDING and self.initial.get("status") != Picture.Status.PENDING:
            raise ValidationError("A picture goes back to review only when it is fetched: hide it instead.")
        return status


@admin.register(Picture)
class PictureAdmin(admin.ModelAdmin):
    form = PictureForm
    list_display = [
        "thumbnail",
        "album",
        "author",
        "status",
        "sensitive",
        "like_count",
        "source",
        "posted_at",
        "added_at",
    ]
    list_display_links = ["thumbnail"]
    list_filter = ["status", "sensitive", "source", AuthorFilter, "added_at", "album"]
    search_fields = ["author_handle", "author_name", "=post_id", "=media_key"]
    search_help_text = "An author's handle or name, a post id or a link to the post."
    list_select_related = ["album"]
    date_hierarchy = "added_at"
    actions = ["approve_pictures", "hide_pictures", "unhide_pictures", "ban_from_album", "ban_everywhere"]
    readonly_fields = [
        "preview",
        "album",
        "source",
        "post_id",
        "media_key",
        "permalink",
        "author_handle",
        "author_name",
        "text",
        "like_count",
        "posted_at",
        "added_at",
        "alt_text",
        "sensitive",
        "width",
        "height",
        "content_hash",
        "structure_hash",
        "original_key",
        "colour_profile",
        "renditions",
    ]
    exclude = ["histogram"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # pictures come from fetches

    @admin.display(description="picture")
    def thumbnail(self, picture: Picture) -> str:
        return format_html('<img src="{}" alt="" width="80" height="80" loading="lazy">', picture.thumb_url)

    @admin.display(description="author", ordering="author_handle")
    def author(self, picture: Picture) -> str:
        query = urlencode({"author": picture.author_handle})
        return format_html(
            '<a href="?{}" title="Only this author\'s pictures">@{}</a><br><small>{}</small>',
            query,
            picture.author_handle,
            picture.author_name,
        )

    @admin.display(description="preview")
    def preview(self, picture: Picture) -> str:
        return format_html(
            '<a href="{}" rel="noopener nofollow">{}</a><br><img src="{}" alt="" width="300" height="300">',
            picture.permalink,
            picture.permalink,
            picture.thumb_url,
        )

    def get_search_results(self, request, queryset, search_term):
        """A link to a post finds its pictures."""
        try:
            post_id = moderation.parse_post_reference(search_term)
        except moderation.ModerationError:
            return super().get_search_results(request, queryset, search_term)
        if post_id != search_term.strip():
            return queryset.filter(post_id=post_id), False
        return super().get_search_results(request, queryset, search_term)

    # Changes go through the moderation services (audit log, collage staleness).

    def save_model(self, request, obj: Picture, form, change: bool) -> None:
        if not change or "status" not in form.changed_data:
            return
        previous = form.initial.get("status")
        single = Picture.objects.filter(pk=obj.pk)
        if obj.status == Picture.Status.HIDDEN:
            moderation.hide(pictures=single, by=request.user)
        elif obj.status == Picture.Status.VISIBLE and previous == Picture.Status.PENDING:
            moderation.approve(pictures=single, by=request.user)
        elif obj.status == Picture.Status.VISIBLE:
            moderation.unhide(pictures=single, by=request.user)

    def delete_model(self, request, obj: Picture) -> None:
        moderation.delete(pictures=Picture.objects.filter(pk=obj.pk), by=request.user)

    def delete_queryset(self, request, queryset) -> None:
        moderation.delete(pictures=queryset, by=request.user)

    @admin.action(description="Approve the selected pictures")
    def approve_pictures(self, request, queryset) -> None:
        n = moderation.approve(pictures=queryset, by=request.user)
        self.message_user(request, f"Approved {_plural(n, 'pending picture')}.", messages.SUCCESS)

    @admin.action(description="Hide the selected pictures")
    def hide_pictures(self, request, queryset) -> None:
        n = moderation.hide(pictures=queryset, by=request.user)
        self.message_user(request, f"Hid {_plural(n, 'picture')}.", messages.SUCCESS)

    @admin.action(description="Show the selected hidden pictures again")
    def unhide_pictures(self, request, queryset) -> None:
        n = moderation.unhide(pictures=queryset, by=request.user)
        self.message_user(request, f"{_plural(n, 'hidden picture')} shown again.", messages.SUCCESS)

    @admin.action(description="Ban the authors of the selected pictures from their album")
    def ban_from_album(self, request, queryset) -> None:
        authors = queryset.order_by().values_list("album_id", "source", "author_handle").distinct()
        albums = Album.objects.in_bulk({album_id for album_id, _, _ in authors})
        done, hidden = set(), 0
        for album_id, source, handle in authors:
            key = (album_id, source, normalize_handle(handle))
            if key in done:
                continue
            done.add(key)
            _, n = moderation.ban_author(source=source, handle=handle, album=albums[album_id], by=request.user)
            hidden += n
        self.message_user(
            request,
            f"Banned {_plural(len(done), 'author')} from their album; {_plural(hidden, 'picture')} hidden.",
            messages.SUCCESS,
        )

    @admin.action(description="Ban the authors of the selected pictures from every album")
    def ban_everywhere(self, request, queryset) -> None:
        authors = {
            (source, normalize_handle(handle))
            for source, handle in queryset.order_by().values_list("source", "author_handle").distinct()
        }
        hidden = 0
        for source, handle in sorted(authors):
            _, n = moderation.ban_author(source=source, handle=handle, album=None, by=request.user)
            hidden += n
        self.message_user(
            request,
            f"Banned {_plural(len(authors), 'author')} from every album; {_plural(hidden, 'picture')} hidden.",
            messages.SUCCESS,
        )

    # The review grid: pending pictures of one album, approve or hide each with a key.

    def get_urls(self):
        return [
            path(
                "review/<int:album_id>/",
                self.admin_site.admin_view(self.review_view),
                name="pictures_picture_review",
            ),
            path(
                "review/<int:album_id>/decide/",
                self.admin_site.admin_view(require_POST(self.decide_view)),
                name="pictures_picture_decide",
            ),
            *super().get_urls(),
        ]

    def review_view(self, request: HttpRequest, album_id: int) -> HttpResponse:
        if not self.has_change_permission(request):
            raise PermissionDenied
        album = get_object_or_404(Album, pk=album_id)
        pending = album.pictures.filter(status=Picture.Status.PENDING)
        pictures = list(pending.order_by("added_at", "id")[:REVIEW_BATCH])
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Review #{album.hashtag}",
            "album": album,
            "pictures": pictures,
            "total": pending.count() if len(pictures) == REVIEW_BATCH else len(pictures),
        }
        return TemplateResponse(request, "pictures/review.html", context)

    def decide_view(self, request: HttpRequest, album_id: int) -> HttpResponse:
        if not self.has_change_permission(request):
            raise PermissionDenied
        album = get_object_or_404(Album, pk=album_id)
        wants_json = "application/json" in request.headers.get("Accept", "")
        picture_id, decision = request.POST.get("picture", ""), request.POST.get("decision", "")
        if not picture_id.isdigit() or decision not in ("approve", "hide"):
            if wants_json:
                return JsonResponse({"error": "Say which picture and approve or hide."}, status=400)
            messages.error(request, "Say which picture and approve or hide.")
            return redirect("admin:pictures_picture_review", album.pk)
        picture = get_object_or_404(Picture, pk=int(picture_id), album=album)
        single = Picture.objects.filter(pk=picture.pk)
        if decision == "approve":
            changed = moderation.approve(pictures=single, by=request.user)
        else:
            changed = moderation.hide(pictures=single, by=request.user)
        status = single.values_list("status", flat=True).first()
        if wants_json:
            pending = album.pictures.filter(status=Picture.Status.PENDING).count()
            return JsonResponse({"picture": picture.pk, "status": status, "changed": changed, "pending": pending})
        word = "approved" if decision == "approve" else "hidden"
        if changed:
            messages.success(request, f"The picture by @{picture.author_handle} is {word}.")
        else:
            messages.info(request, f"The picture by @{picture.author_handle} was already decided ({status}).")
        return redirect("admin:pictures_picture_review", album.pk)


# Block lists: added and removed through the moderation services, never edited in place.


class BlockedAuthorForm(forms.ModelForm):
    class Meta:
        model = BlockedAuthor
        fields = ["album", "source", "handle", "reason"]

    def clean_handle(self) -> str:
        try:
            return moderation.clean_handle(self.cleaned_data["handle"])
        except moderation.ModerationError as exc:
            raise ValidationError(str(exc)) from None

    def clean(self):
        cleaned = super().clean()
        lookup = {"album": cleaned.get("album"), "source": cleaned.get("source"), "handle": cleaned.get("handle")}
        if lookup["handle"] and BlockedAuthor.objects.filter(**lookup).exists():
            raise ValidationError("This author is already blocked there.")
        return cleaned


class ScopeFilter(admin.SimpleListFilter):
    title = "scope"
    parameter_name = "scope"

    def lookups(self, request, model_admin):
        return [("global", "Every album"), ("album", "One album")]

    def queryset(self, request, queryset):
        if self.value() == "global":
            return queryset.filter(album__isnull=True)
        if self.value() == "album":
            return queryset.filter(album__isnull=False)
        return queryset


class BlockListAdmin(admin.ModelAdmin):
    """Shared by the block lists: added through a service, viewable, removable, never edited."""

    list_select_related = ["album", "created_by"]
    autocomplete_fields = ["album"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False if obj is not None else super().has_change_permission(request)

    def delete_queryset(self, request, queryset) -> None:
        for obj in queryset:
            self.delete_model(request, obj)

    @admin.display(description="album", ordering="album__hashtag")
    def scope(self, obj) -> str:
        return f"#{obj.album.hashtag}" if obj.album_id else "every album"


@admin.register(BlockedAuthor)
class BlockedAuthorAdmin(BlockListAdmin):
    form = BlockedAuthorForm
    list_display = ["handle", "source", "scope", "reason", "created_by", "created"]
    list_filter = [ScopeFilter, "source", "created"]
    search_fields = ["handle", "album__hashtag", "reason"]

    def save_model(self, request, obj: BlockedAuthor, form, change: bool) -> None:
        block, hidden = moderation.ban_author(
            source=obj.source, handle=obj.handle, album=obj.album, by=request.user, reason=obj.reason
        )
        obj.pk, obj.created, obj.created_by = block.pk, block.created, block.created_by
        where = f"#{obj.album.hashtag}" if obj.album_id else "every album"
        self.message_user(request, f"@{obj.handle} is banned from {where}; {_plural(hidden, 'picture')} hidden.")

    def delete_model(self, request, obj: BlockedAuthor) -> None:
        moderation.unban_author(source=obj.source, handle=obj.handle, album=obj.album, by=request.user)


class BlockedWordForm(forms.ModelForm):
    class Meta:
        model = BlockedWord
        fields = ["album", "word"]

    def clean_word(self) -> str:
        try:
            return moderation.clean_word(self.cleaned_data["word"])
        except moderation.ModerationError as exc:
            raise ValidationError(str(exc)) from None

    def clean(self):
        cleaned = super().clean()
        word = cleaned.get("word")
        if word and BlockedWord.objects.filter(album=cleaned.get("album"), word=word).exists():
            raise ValidationError("This word is already blocked there.")
        return cleaned


@admin.register(BlockedWord)
class BlockedWordAdmin(BlockListAdmin):
    form = BlockedWordForm
    list_display = ["word", "scope", "created_by", "created"]
    list_filter = [ScopeFilter, "created"]
    search_fields = ["word", "album__hashtag"]

    def save_model(self, request, obj: BlockedWord, form, change: bool) -> None:
        blocked = moderation.block_word(word=obj.word, album=obj.album, by=request.user)
        obj.pk, obj.created, obj.created_by = blocked.pk, blocked.created, blocked.created_by

    def delete_model(self, request, obj: BlockedWord) -> None:
        moderation.unblock_word(word=obj.word, album=obj.album, by=request.user)


class TakedownForm(forms.ModelForm):
    post = forms.CharField(
        label="Post",
        max_length=500,
        help_text="The post's id, or its link (https://x.com/<author>/status/<id>, twitter.com works too).",
    )

    class Meta:
        model = Takedown
        fields = ["post", "source", "reason"]

    def clean_post(self) -> str:
        try:
            return moderation.parse_post_reference(self.cleaned_data["post"])
        except moderation.ModerationError as exc:
            raise ValidationError(str(exc)) from None

    def clean(self):
        cleaned = super().clean()
        post_id, source = cleaned.get("post"), cleaned.get("source")
        if post_id and source and Takedown.objects.filter(source=source, post_id=post_id).exists():
            raise ValidationError(f"Post {post_id} is already taken down.")
        return cleaned


@admin.register(Takedown)
class TakedownAdmin(admin.ModelAdmin):
    list_display = ["post_id", "source", "reason", "created_by", "created"]
    list_filter = ["source", "created"]
    search_fields = ["=post_id", "reason"]
    list_select_related = ["created_by"]
    readonly_fields = ["source", "post_id", "reason", "created_by", "created"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = TakedownForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        return ["post", "source", "reason"] if obj is None else self.readonly_fields

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly_fields

    def has_change_permission(self, request, obj=None) -> bool:
        return False if obj is not None else super().has_change_permission(request)

    def save_model(self, request, obj: Takedown, form, change: bool) -> None:
        record, deleted = moderation.takedown(
            post=form.cleaned_data["post"], source=obj.source, reason=obj.reason, by=request.user
        )
        obj.pk, obj.post_id, obj.created, obj.created_by = record.pk, record.post_id, record.created, record.created_by
        self.message_user(request, f"Post {record.post_id} is taken down: {_plural(deleted, 'picture')} deleted.")

    def delete_model(self, request, obj: Takedown) -> None:
        moderation.lift_takedown(takedown=obj, by=request.user)

    def delete_queryset(self, request, queryset) -> None:
        for obj in queryset:
            moderation.lift_takedown(takedown=obj, by=request.user)


@admin.register(DeletedMedia)
class DeletedMediaAdmin(admin.ModelAdmin):
    """Photos deleted by moderators, which their album does not fetch again. Remove a row to allow it."""

    list_display = ["media_key", "post_id", "album", "source", "created"]
    list_filter = ["source", "created"]
    search_fields = ["=media_key", "=post_id", "album__hashtag"]
    list_select_related = ["album"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ModerationAction)
class ModerationActionAdmin(ReadOnlyAdmin):
    """The audit log: readable, never editable."""

    list_display = ["created", "user", "action", "where", "handle", "post_id", "count", "short_detail"]
    list_filter = ["action", "created"]
    search_fields = ["hashtag", "handle", "=post_id", "user__email", "detail"]
    list_select_related = ["user"]
    date_hierarchy = "created"

    @admin.display(description="album", ordering="hashtag")
    def where(self, action: ModerationAction) -> str:
        return f"#{action.hashtag}" if action.hashtag else "every album"

    @admin.display(description="detail")
    def short_detail(self, action: ModerationAction) -> str:
        return action.detail[:100]
