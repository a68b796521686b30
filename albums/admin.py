from django.contrib import admin
from django.db.models import Count, Q
from django.urls import reverse
from django.utils.html import format_html

from albums.models import Album, Milestone
from pictures.models import Picture


@admin.register(Album)
class AlbumAdmin(admin.ModelAdmin):
    list_display = [
        "hashtag",
        "title",
        "owner",
        "visible_count",
        "total_count",
        "is_active",
        "visibility",
        "last_success_at",
        "next_fetch_at",
        "short_error",
    ]
    list_filter = ["is_active", "visibility", "moderation", "created"]
    search_fields = ["hashtag", "title", "owner__email"]
    raw_id_fields = ["owner"]
    readonly_fields = [
        "created",
        "pictures_link",
        "newest_post_id",
        "backfill_token",
        "backfill_done",
        "last_fetch_at",
        "last_success_at",
        "last_error",
        "last_error_at",
        "failures",
        "rate_limited_until",
        "collage_stale",
    ]
    fieldsets = [
        (None, {"fields": ["hashtag", "title", "description", "owner", "created", "pictures_link"]}),
        ("Settings", {"fields": ["is_active", "visibility", "moderation", "sensitive_media"]}),
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
                    "rate_limited_until",
                    "newest_post_id",
                    "backfill_token",
                    "backfill_done",
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
                visible_total=Count("pictures", filter=Q(pictures__status=Picture.Status.VISIBLE)),
                picture_total=Count("pictures"),
            )
        )

    @admin.display(description="visible", ordering="visible_total")
    def visible_count(self, album: Album) -> int:
        return album.visible_total

    @admin.display(description="total", ordering="picture_total")
    def total_count(self, album: Album) -> int:
        return album.picture_total

    @admin.display(description="last error")
    def short_error(self, album: Album) -> str:
        return album.last_error[:80]

    @admin.display(description="pictures")
    def pictures_link(self, album: Album) -> str:
        url = reverse("admin:pictures_picture_changelist") + f"?album__id__exact={album.pk}"
        return format_html('<a href="{}">See the pictures of #{}</a>', url, album.hashtag)


@admin.register(Milestone)
class MilestoneAdmin(admin.ModelAdmin):
    list_display = ["album", "threshold", "count", "reached_at", "notified_at", "attempts"]
    list_filter = ["threshold", ("notified_at", admin.EmptyFieldListFilter)]
    search_fields = ["album__hashtag"]
    list_select_related = ["album"]
    readonly_fields = ["album", "threshold", "count", "reached_at", "notified_at", "attempts", "last_error"]

    def has_add_permission(self, request) -> bool:
        return False
