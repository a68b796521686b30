from django.contrib import admin
from django.utils.html import format_html

from pictures.models import Picture


@admin.register(Picture)
class PictureAdmin(admin.ModelAdmin):
    list_display = ["thumbnail", "album", "author_handle", "like_count", "status", "source", "posted_at", "added_at"]
    list_display_links = ["thumbnail", "author_handle"]
    list_filter = ["status", "source", "sensitive", "added_at", "album"]
    search_fields = ["author_handle", "author_name", "post_id", "=media_key"]
    list_select_related = ["album"]
    raw_id_fields = ["album"]
    date_hierarchy = "added_at"
    readonly_fields = [
        "preview",
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
        "renditions",
    ]
    exclude = ["histogram"]

    @admin.display(description="picture")
    def thumbnail(self, picture: Picture) -> str:
        return format_html('<img src="{}" alt="" width="80" height="80" loading="lazy">', picture.thumb_url)

    @admin.display(description="preview")
    def preview(self, picture: Picture) -> str:
        return format_html(
            '<a href="{}" rel="noopener nofollow">{}</a><br><img src="{}" alt="" width="300" height="300">',
            picture.permalink,
            picture.permalink,
            picture.thumb_url,
        )
