from __future__ import annotations

from django.db import models
from django.utils import timezone

from albums.models import Album


class Source(models.TextChoices):
    X = "x", "X (Twitter)"
    SAMPLE = "sample", "Bundled sample"


class PictureQuerySet(models.QuerySet["Picture"]):
    def visible(self) -> PictureQuerySet:
        return self.filter(status=Picture.Status.VISIBLE)

    def newest_first(self) -> PictureQuerySet:
        return self.order_by("-added_at", "-id")

    def most_liked(self) -> PictureQuerySet:
        return self.order_by("-like_count", "-added_at", "-id")


class Picture(models.Model):
    """One photo of one post, stored in one album."""

    class Status(models.TextChoices):
        VISIBLE = "visible", "Visible"
        HIDDEN = "hidden", "Hidden"
        PENDING = "pending", "Pending review"

    album = models.ForeignKey(Album, models.CASCADE, related_name="pictures")
    source = models.CharField(max_length=20, choices=Source.choices)
    # Platform ids are strings: they exceed 32 bits (and 53 bits in JavaScript).
    post_id = models.CharField(max_length=64)
    media_key = models.CharField(max_length=100)
    permalink = models.URLField(max_length=500)
    author_handle = models.CharField(max_length=100)
    author_name = models.CharField(max_length=200, blank=True)
    text = models.TextField(blank=True, help_text="The post's text, as the source gave it (untrusted).")
    like_count = models.PositiveIntegerField(default=0)
    posted_at = models.DateTimeField()
    added_at = models.DateTimeField(default=timezone.now)
    alt_text = models.TextField(blank=True)
    sensitive = models.BooleanField(default=False)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    content_hash = models.CharField(max_length=64, help_text="SHA-256 of the original's bytes.")
    # Dedupe signatures (pictures/dedupe.py): a normalised colour histogram and a structural hash.
    histogram = models.BinaryField(max_length=1024)
    structure_hash = models.CharField(max_length=64)
    original_key = models.CharField(max_length=255, help_text="Storage key of the original.")
    renditions = models.JSONField(
        default=dict, blank=True, help_text='{"thumb": {"key": ..., "width": ..., "height": ...}, ...}'
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.VISIBLE)

    objects = PictureQuerySet.as_manager()

    class Meta:
        ordering = ["-added_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["album", "source", "media_key"], name="picture_unique_media"),
            models.UniqueConstraint(fields=["album", "content_hash"], name="picture_unique_content"),
        ]
        indexes = [
            # Album page and API default: an album's visible pictures, newest first.
            models.Index(fields=["album", "status", "-added_at", "-id"], name="picture_newest_idx"),
            # "Most liked" toggle, popular page, collage: visible pictures by likes.
            models.Index(fields=["album", "status", "-like_count", "-added_at"], name="picture_liked_idx"),
            # API ordering and filters by posted time.
            models.Index(fields=["album", "status", "-posted_at"], name="picture_posted_idx"),
            # By-author page and author bans: an author's pictures in an album.
            models.Index(fields=["album", "author_handle", "-added_at"], name="picture_author_idx"),
            # Takedown of a post across every album.
            models.Index(fields=["source", "post_id"], name="picture_post_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.media_key} by @{self.author_handle} in #{self.album.hashtag}"

    def rendition(self, name: str) -> dict | None:
        return self.renditions.get(name)

    def storage_url(self, key: str) -> str:
        from django.core.files.storage import default_storage

        return default_storage.url(key)

    def image(self, name: str) -> dict:
        """A rendition's url, width and height (the original when the rendition is missing)."""
        rendition = self.rendition(name)
        if rendition is None:
            return {"url": self.storage_url(self.original_key), "width": self.width, "height": self.height}
        return {"url": self.storage_url(rendition["key"]), "width": rendition["width"], "height": rendition["height"]}

    @property
    def thumb_url(self) -> str:
        return self.image("thumb")["url"]

    @property
    def square_url(self) -> str:
        return self.image("square")["url"]

    @property
    def large(self) -> dict:
        return self.image("large")

    @property
    def alt(self) -> str:
        """Alt text for <img>: the author's own description, else who took it."""
        return self.alt_text or f"Photo by @{self.author_handle}"
