from django.contrib import admin

from collages.models import Collage


@admin.register(Collage)
class CollageAdmin(admin.ModelAdmin):
    list_display = ["album", "picture_count", "built_at", "fingerprint"]
    search_fields = ["album__hashtag"]
    list_select_related = ["album"]
    readonly_fields = ["album", "image_key", "square_key", "fingerprint", "picture_count", "built_at"]
