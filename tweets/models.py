from __future__ import annotations

from datetime import datetime

from django.db import models
from django.utils import timezone

from albums.models import Album
from tweets.sources import source_label

# The widest source key: "mastodon:" or "bluesky:" and a host name (at most 253 characters).
SOURCE_KEY_LENGTH = 270


class AlbumSource(models.Model):
    """One source feeding one album, with its own cursors, back-off, rate limit and last result,
    so one failing source never blocks the others (tweets.services.fetch_album).

    `key` names the source (tweets.registry): `x`, `sample`, `mastodon:<instance>`,
    `bluesky:<service>`. A fetch gives an album a row for every source of the run; the owner
    switches them off and on (`enabled`); a source configured later joins every album.
    """

    album = models.ForeignKey(Album, models.CASCADE, related_name="sources")
    key = models.CharField(max_length=SOURCE_KEY_LENGTH)
    enabled = models.BooleanField(default=True)
    newest_post_id = models.CharField(
        max_length=255, blank=True, help_text="Cursor for newer posts: the newest post read (since_id, or a time)."
    )
    backfill_token = models.CharField(
        max_length=1000, blank=True, help_text="Cursor for older posts: the source's next-page token."
    )
    backfill_since_id = models.CharField(
        max_length=255,
        blank=True,
        help_text="The since_id the older walk (backfill_token) was started under: empty for the history walk.",
    )
    backfill_done = models.BooleanField(default=False)
    failures = models.PositiveIntegerField(default=0, help_text="Consecutive failed fetches (for back-off).")
    next_fetch_at = models.DateTimeField(null=True, blank=True, help_text="Backing off after failures until then.")
    rate_limited_until = models.DateTimeField(null=True, blank=True)
    last_fetch_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_status = models.CharField(max_length=20, blank=True)
    last_posts = models.PositiveIntegerField(default=0, help_text="Posts the last fetch read.")
    last_added = models.PositiveIntegerField(default=0, help_text="Pictures the last fetch added.")
    last_error = models.TextField(blank=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["pk"]
        constraints = [
            # One state per source per album; also the index a fetch reads an album's rows by.
            models.UniqueConstraint(fields=["album", "key"], name="albumsource_unique_key"),
        ]

    def __str__(self) -> str:
        return f"{self.key} for #{self.album.hashtag}"

    @property
    def label(self) -> str:
        """What owners read: "X", "Sample posts", or the instance or service: "mastodon.social"."""
        return source_label(self.key)

    @property
    def summary(self) -> str:
        """The last search and what came back, in plain words ("12 posts, 9 pictures")."""
        if not self.enabled:
            return "switched off"
        if self.last_fetch_at is None:
            return "not searched yet"
        if self.last_status == "ok":
            return f"{self.last_posts} posts, {self.last_added} pictures"
        if self.last_status in ("rate_limited", "paused") and self.rate_limited_until:
            return f"rate limited until {self.rate_limited_until:%H:%M} UTC"
        return f"failed: {self.last_error}" if self.last_error else self.last_status.replace("_", " ")


class FetchRun(models.Model):
    """One fetch of one album from one source by fetch_tweets: what it did and what went wrong.

    A running fetch is also the album's claim: `claim` points at the album while the run holds it
    (unique, so at most one live run per album) and `lease_until` says until when, renewed as the
    run makes progress. A run whose lease expired, or whose process is gone, is closed as
    interrupted by the next run (tweets.services.close_interrupted_runs).
    """

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        OK = "ok", "Finished"
        FAILED = "failed", "Failed"
        RATE_LIMITED = "rate_limited", "Rate limited"
        PAUSED = "paused", "Paused: the source's usage cap or rate limit"
        STOPPED = "stopped", "Stopped by a shutdown; the next run continues"
        INTERRUPTED = "interrupted", "Interrupted: its process died or hung"

    album = models.ForeignKey(Album, models.CASCADE, related_name="fetch_runs")
    source = models.CharField(
        max_length=SOURCE_KEY_LENGTH, blank=True, help_text="The source asked (an AlbumSource key: x, mastodon:<host>)."
    )
    started = models.DateTimeField(default=timezone.now)
    finished = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.RUNNING)
    claim = models.OneToOneField(
        Album,
        models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
        help_text="The album while this run holds it; cleared when the run ends.",
    )
    lease_until = models.DateTimeField(
        null=True, blank=True, help_text="The claim lapses after this unless the run makes progress."
    )
    holder = models.CharField(max_length=300, blank=True, help_text="The process running it: host:pid.")
    backfill = models.BooleanField(default=False)
    requests_made = models.PositiveIntegerField(default=0)
    posts_seen = models.PositiveIntegerField(default=0, help_text="Every post the source returned (X bills each).")
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


class PendingMediaQuerySet(models.QuerySet):
    def waiting(self) -> PendingMediaQuerySet:
        return self.filter(state=PendingMedia.State.WAITING)

    def due(self, now: datetime) -> PendingMediaQuerySet:
        return self.waiting().filter(next_attempt_at__lte=now)


class PendingMedia(models.Model):
    """A photo whose download failed for a reason that may pass (a timeout, a 503, a dropped
    connection, a host skipped for the run, the run's time budget): later runs try it again with
    back-off until it is stored or it ages out (EVERHASH_MEDIA_RETRY_HOURS), reason recorded.

    It keeps what is needed to store the photo without asking X again: the post and the photo.
    """

    class State(models.TextChoices):
        WAITING = "waiting", "Waiting for another try"
        STORED = "stored", "Stored on a later try"
        GAVE_UP = "gave_up", "Gave up"

    album = models.ForeignKey(Album, models.CASCADE, related_name="pending_media")
    source = models.CharField(max_length=20, help_text="The network (pictures.models.Source).")
    post_id = models.CharField(max_length=255, help_text="A Mastodon or Bluesky id is a URI.")
    media_key = models.CharField(max_length=100)
    url = models.URLField(max_length=1000)
    post = models.JSONField(help_text="The post's fields (author, permalink, text, time...) and the photo's.")
    state = models.CharField(max_length=10, choices=State.choices, default=State.WAITING)
    attempts = models.PositiveIntegerField(default=1)
    reason = models.CharField(max_length=40, help_text="The last failure's short code (timeout, http_status...).")
    message = models.TextField(blank=True)
    created = models.DateTimeField(default=timezone.now)
    next_attempt_at = models.DateTimeField()
    finished = models.DateTimeField(null=True, blank=True)

    objects = PendingMediaQuerySet.as_manager()

    class Meta:
        ordering = ["next_attempt_at"]
        constraints = [
            models.UniqueConstraint(fields=["album", "source", "media_key"], name="pendingmedia_unique"),
        ]
        indexes = [
            # fetch_album: an album's retries that are due; the owner's list of waiting ones.
            models.Index(fields=["album", "state", "next_attempt_at"], name="pendingmedia_due_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.media_key} of #{self.album.hashtag} ({self.get_state_display()})"


class SourcePause(models.Model):
    """A source that must not be asked anything before `until`: X's app-wide rate limit or its
    usage cap, a Mastodon instance's or Bluesky's rate limit. Every album waits for that source
    (one message, not one failure per album); /healthz says so. `source` is the source's key
    (`x`, `mastodon:<instance>`, `bluesky:<service>`)."""

    class Kind(models.TextChoices):
        RATE_LIMIT = "rate_limit", "Rate limit"
        USAGE_CAP = "usage_cap", "Usage cap"

    source = models.CharField(max_length=SOURCE_KEY_LENGTH, unique=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    until = models.DateTimeField()
    message = models.TextField()
    created = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.source} paused until {self.until:%Y-%m-%d %H:%M} UTC ({self.get_kind_display()})"


class BlueskySession(models.Model):
    """The signed-in Bluesky session, kept between runs: createSession is tightly rate-limited
    (per account: 30 per 5 minutes, 300 a day), so everhash signs in once and then only refreshes.

    `session` is the atproto SDK's exported session string (access and refresh tokens): a secret,
    never shown in the admin.
    """

    api_url = models.CharField(max_length=200)
    handle = models.CharField(max_length=253)
    session = models.TextField()
    created = models.DateTimeField(default=timezone.now)
    updated = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            # One session per account and service: the adapter loads and saves it by these.
            models.UniqueConstraint(fields=["api_url", "handle"], name="blueskysession_unique_account"),
        ]

    def __str__(self) -> str:
        return f"Bluesky session of {self.handle} at {self.api_url}"
