from django.contrib import admin

from everhash.lib.admin import ReadOnlyAdmin
from tweets.models import FetchRun


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


@admin.register(FetchRun)
class FetchRunAdmin(ReadOnlyAdmin):
    """Fetch history: readable, never editable."""

    list_display = [
        "album",
        "started",
        "finished",
        "requests_made",
        "posts_seen",
        "pictures_added",
        "duplicates",
        "rejected",
        "skipped",
        "short_error",
    ]
    list_filter = [FailedFilter, "backfill", "started"]
    search_fields = ["album__hashtag", "error"]
    list_select_related = ["album"]
    date_hierarchy = "started"

    @admin.display(description="error")
    def short_error(self, run: FetchRun) -> str:
        return run.error[:100]
