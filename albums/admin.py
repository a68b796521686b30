import logging

from django.contrib import admin, messages
from django.db.models import Count, Q
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from albums.models import Album, Milestone, MilestoneDelivery
from albums.services import pictures_changed
from collages.services import build_collage
from pictures import moderation
from pictures.models import Picture
from pictures.services import delete_album

logger = logging.getLogger("everhash.admin")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


class FetchErrorFilter(admin.SimpleListFilter):
    title = "last fetch"
    parameter_name = "fetch"

    def lookups(self, request, model_admin):
        return [("error", "Failed"), ("ok", "Succeeded"), ("never", "Never fetched")]

    def queryset(self, request, queryset):
        if self.value() == "error":
            return queryset.exclude(last_error="")
        if self.value() == "ok":
            return queryset.filter(last_error="", last_fetch_at__isnull=False)
        if self.value() == "never":
            return queryset.filter(last_fetch_at__isnull=True)
        return queryset


@admin.register(Album)
class AlbumAdmin(admin.ModelAdmin):
    list_display = [
        "hashtag",
        "title",
        "owner",
        "visible_count",
        "total_count",
        "pending_count",
        "is_active",
        "visibility",
        "moderation",
        "last_fetch_at",
        "last_success_at",
        "next_fetch_at",
        "short_error",
    ]
    list_filter = [
        "is_active",
        FetchErrorFilter,
        "visibility",
        "moderation",
        "sensitive_media",
        "blocked_words_action",
        "collage_stale",
        "created",
    ]
    search_fields = ["hashtag", "title", "owner__email"]
    raw_id_fields = ["owner"]
    actions = ["pause", "resume", "fetch_now", "rebuild_collage"]
    readonly_fields = [
        "created",
        "pictures_link",
        "review_link",
        "last_fetch_at",
        "last_success_at",
        "last_error",
        "last_error_at",
        "failures",
        "collage_stale",
    ]
    fieldsets = [
        (None, {"fields": ["hashtag", "title", "description", "owner", "created", "pictures_link", "review_link"]}),
        (
            "Settings",
            {"fields": ["is_active", "visibility", "moderation", "sensitive_media", "blocked_words_action"]},
        ),
        (
            "Fetch state",
            {
                "fields": [
                    "next_fetch_at",
                    "last_fetch_at",
                    "last_success_at",
                    "last_error",
                    "last_error_at",
                    "failures",
                    "collage_stale",
                ]
            },
        ),
    ]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related("owner")
            .annotate(
                visible_total=Picture.objects.visible_count(),
                picture_total=Count("pictures"),
                pending_total=Count("pictures", filter=Q(pictures__status=Picture.Status.PENDING)),
            )
        )

    @admin.display(description="visible", ordering="visible_total")
    def visible_count(self, album: Album) -> int:
        return album.visible_total

    @admin.display(description="total", ordering="picture_total")
    def total_count(self, album: Album) -> int:
        return album.picture_total

    @admin.display(description="pending", ordering="pending_total")
    def pending_count(self, album: Album) -> str:
        if not album.pending_total:
            return "0"
        url = reverse("admin:pictures_picture_review", args=[album.pk])
        return format_html('<a href="{}" title="Review them">{}</a>', url, album.pending_total)

    @admin.display(description="last error")
    def short_error(self, album: Album) -> str:
        return album.last_error[:80]

    @admin.display(description="pictures")
    def pictures_link(self, album: Album) -> str:
        url = reverse("admin:pictures_picture_changelist") + f"?album__id__exact={album.pk}"
        return format_html('<a href="{}">See the pictures of #{}</a>', url, album.hashtag)

    @admin.display(description="review")
    def review_link(self, album: Album) -> str:
        if album.pk is None:
            return "-"
        url = reverse("admin:pictures_picture_review", args=[album.pk])
        pending = album.pictures.filter(status=Picture.Status.PENDING).count()
        return format_html('<a href="{}">Review the pending pictures ({})</a>', url, pending)

    @admin.action(description="Pause fetching the selected albums")
    def pause(self, request, queryset) -> None:
        n = moderation.pause(albums=queryset, by=request.user)
        self.message_user(request, f"Paused {_plural(n, 'album')}.", messages.SUCCESS)

    @admin.action(description="Resume fetching the selected albums")
    def resume(self, request, queryset) -> None:
        n = moderation.resume(albums=queryset, by=request.user)
        self.message_user(request, f"Resumed {_plural(n, 'album')}.", messages.SUCCESS)

    @admin.action(description="Fetch the selected albums on the next run")
    def fetch_now(self, request, queryset) -> None:
        # Due at once; each source's rate limit and back-off (tweets.AlbumSource) still hold.
        n = queryset.filter(is_active=True).update(next_fetch_at=timezone.now())
        paused = queryset.filter(is_active=False).count()
        message = f"{_plural(n, 'album')} will be fetched on the next run."
        if paused:
            message += f" {_plural(paused, 'paused album')} left alone: resume them first."
        self.message_user(request, message, messages.SUCCESS)

    @admin.action(description="Rebuild the collages of the selected albums")
    def rebuild_collage(self, request, queryset) -> None:
        albums = list(queryset.order_by("pk"))
        pictures_changed(album_ids=[album.pk for album in albums])
        built, failed = 0, []
        for album in albums:
            try:
                if build_collage(album=album, force=True) is not None:
                    built += 1
            except Exception:
                logger.exception("Collage of #%s could not be rebuilt", album.hashtag)
                failed.append(f"#{album.hashtag}")
        self.message_user(request, f"Rebuilt {_plural(built, 'collage')}.", messages.SUCCESS)
        if failed:
            self.message_user(
                request, f"Failed (they stay marked stale for the next run): {', '.join(failed)}.", messages.WARNING
            )

    # Deleting an album also deletes its files (pictures.services.delete_album).

    def delete_model(self, request, obj: Album) -> None:
        delete_album(album=obj)

    def delete_queryset(self, request, queryset) -> None:
        for album in queryset:
            delete_album(album=album)


class MilestoneDeliveryInline(admin.TabularInline):
    """Who got the milestone's email, and who is still owed it (retried on the next run)."""

    model = MilestoneDelivery
    fields = readonly_fields = ["email", "sent_at", "attempts", "last_error"]
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Milestone)
class MilestoneAdmin(admin.ModelAdmin):
    inlines = [MilestoneDeliveryInline]
    list_display = ["album", "threshold", "count", "reached_at", "notified_at", "attempts"]
    list_filter = ["threshold", ("notified_at", admin.EmptyFieldListFilter)]
    search_fields = ["album__hashtag"]
    list_select_related = ["album"]
    readonly_fields = ["album", "threshold", "count", "reached_at", "notified_at", "attempts", "last_error"]

    def has_add_permission(self, request) -> bool:
        return False
