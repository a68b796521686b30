from __future__ import annotations

from django.db import models
from django.utils import timezone

from albums.models import Album


class FetchRun(models.Model):
    """One fetch of one album by fetch_tweets: what it did and what went wrong."""

    album = models.ForeignKey(Album, models.CASCADE, related_name="fetch_runs")
    started = models.DateTimeField(default=timezone.now)
    finished = models.DateTimeField(null=True, blank=True)
    backfill = models.BooleanField(default=False)
    requests_made = models.PositiveIntegerField(default=0)
    posts_seen = models.PositiveIntegerField(default=0)
    pictures_added = models.PositiveIntegerField(default=0)
    duplicates = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0, help_text="Posts skipped by policy (blocks, sensitive).")
    error = models.TextField(blank=True)
    rejections = models.JSONField(default=list, blank=True, help_text="Rejected images with their reasons.")

    class Meta:
        ordering = ["-started"]
        indexes = [
            # Fetch history of an album, newest first (admin, API fetch status).
            models.Index(fields=["album", "-started"], name="fetchrun_album_idx"),
        ]

    def __str__(self) -> str:
        return f"Fetch of #{self.album.hashtag} at {self.started:%Y-%m-%d %H:%M}"

    @property
    def ok(self) -> bool:
        return self.finished is not None and not self.error
