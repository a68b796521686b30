from django.conf import settings
from django.contrib import admin
from django.utils import timezone

from everhash.lib.admin import ReadOnlyAdmin
from tweets.models import AlbumSource, FetchRun, PendingMedia, SourcePause
from tweets.services import posts_read


class FailedFilter(admin.SimpleListFilter):
    title = "outcome"
    parameter_name = "outcome"

    def lookups(self, request, model_admin):
        return [("failed", "Failed"), ("ok", "Succeeded"), ("running", "Running")]

    def queryset(self, request, queryset):
        if self.value() == "failed":
            return queryset.exclude(error="")
        if self.value() == "ok":
            return queryset.filter(error="", finished__isnull=False)
        if self.value() == "running":
            return queryset.filter(finished__isnull=True)
        return queryset


@admin.register(AlbumSource)
class AlbumSourceAdmin(ReadOnlyAdmin):
    """Each album's sources: cursors, back-off, rate limit and last result (owners switch them on
    their Sources page; the fetch writes the rest)."""

    list_display = [
        "album",
        "key",
        "enabled",
        "last_fetch_at",
        "last_status",
        "last_posts",
        "last_added",
        "failures",
        "next_fetch_at",
        "rate_limited_until",
    ]
    list_filter = ["enabled", "last_status", "key"]
    search_fields = ["album__hashtag", "key", "last_error"]
    list_select_related = ["album"]


@admin.register(FetchRun)
class FetchRunAdmin(ReadOnlyAdmin):
    """Fetch history: readable, never editable."""

    change_list_template = "admin/tweets/fetchrun/change_list.html"
    list_display = [
        "album",
        "source",
        "started",
        "finished",
        "status",
        "requests_made",
        "posts_seen",
        "pictures_added",
        "duplicates",
        "rejected",
        "skipped",
        "short_error",
    ]
    list_filter = [FailedFilter, "status", "backfill", "started"]
    search_fields = ["album__hashtag", "error"]
    list_select_related = ["album"]
    date_hierarchy = "started"

    @admin.display(description="error")
    def short_error(self, run: FetchRun) -> str:
        return run.error[:100]

    def changelist_view(self, request, extra_context=None):
        # What X bills: posts read per album today and this month, and a pause in force, above the runs.
        extra = {
            "posts_read": posts_read(),
            "cost_per_post": settings.EVERHASH_X_COST_PER_POST,
            "pauses": SourcePause.objects.filter(until__gt=timezone.now()),
            **(extra_context or {}),
        }
        return super().changelist_view(request, extra_context=extra)


@admin.register(PendingMedia)
class PendingMediaAdmin(ReadOnlyAdmin):
    """Photos whose download failed for a reason that may pass: tried again by later runs."""

    list_display = ["album", "media_key", "state", "attempts", "reason", "message", "created", "next_attempt_at"]
    list_filter = ["state", "reason", "source"]
    search_fields = ["album__hashtag", "media_key", "post_id"]
    list_select_related = ["album"]


@admin.register(SourcePause)
class SourcePauseAdmin(admin.ModelAdmin):
    """A pause of a source (X's usage cap or rate limit); deleting one resumes fetching at once."""

    list_display = ["source", "kind", "until", "message", "created"]
    readonly_fields = ["source", "kind", "until", "message", "created"]

    def has_add_permission(self, request) -> bool:
        return False
