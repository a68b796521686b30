from __future__ import annotations

from django.db import models
from django.utils import timezone

from albums.models import Album
from everhash.lib.media import media_url


class Collage(models.Model):
    """The current cover image of an album, built from its best visible pictures."""

    album = models.OneToOneField(Album, models.CASCADE, related_name="collage")
    image_key = models.CharField(max_length=255, help_text="Storage key of the 1200x630 share image.")
    square_key = models.CharField(max_length=255, blank=True, help_text="Storage key of the square image.")
    small_key = models.CharField(
        max_length=255, blank=True, help_text="Storage key of the 400x400 square (the index's tiles)."
    )
    fingerprint = models.CharField(max_length=64, help_text="Hash of the pictures shown, in order.")
    picture_count = models.PositiveIntegerField(default=0)
    built_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"Collage of #{self.album.hashtag}"

    @property
    def image_url(self) -> str:
        return media_url(self.image_key)

    @property
    def square_url(self) -> str:
        return media_url(self.square_key or self.image_key)

    @property
    def small_url(self) -> str:
        """The 400x400 square; a collage built before it existed offers its big square."""
        return media_url(self.small_key or self.square_key or self.image_key)
