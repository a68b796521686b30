from __future__ import annotations

import secrets
from datetime import datetime
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.urls import reverse
from django.utils import timezone

from albums.hashtags import MAX_LENGTH, RESERVED, normalize_hashtag


def new_secret() -> str:
    """An unguessable token for unlisted albums' links (256 random bits)."""
    return secrets.token_urlsafe(32)


def parse_origins(value: str) -> list[str]:
    """The origins in a list written one per line (or separated by spaces), normalised
    (`https://example.com`); ValidationError for anything that is not a bare http(s) origin."""
    origins = []
    for raw in value.split():
        parts = urlsplit(raw.strip().rstrip("/"))
        if parts.scheme not in ("https", "http") or not parts.hostname or parts.path or parts.query or parts.fragment:
            raise ValidationError(f"{raw} is not an origin: write it like https://example.com (no path).")
        if parts.username or parts.password:
            raise ValidationError(f"{raw} is not an origin: leave out the user name and password.")
        origin = f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        if origin not in origins:
            origins.append(origin)
    return origins


def validate_origins(value: str) -> None:
    parse_origins(value)


def validate_hashtag(value: str) -> None:
    if normalize_hashtag(value) != value:
        raise ValidationError("Store hashtags in their normalised form (use normalize_hashtag).")
    if value in RESERVED:
        raise ValidationError(f"#{value} is a word the site uses for its own pages: choose another hashtag.")


class AlbumQuerySet(models.QuerySet["Album"]):
    def public(self) -> AlbumQuerySet:
        return self.filter(visibility=Album.Visibility.PUBLIC)

    # --- The access policy: who may see an album, who may manage it -------------------------
    # The one rule; Album.can_see() and Album.can_manage() are the same rule for one album, and
    # albums/access.py applies it to a request (pages, feed, zip, API, links).

    def visible_to(self, user, *, key: str | None = None) -> AlbumQuerySet:
        """The albums `user` may open: public ones, their own, any for staff, an unlisted one with its key."""
        if user is not None and user.is_authenticated and user.is_staff:
            return self
        rule = models.Q(visibility=Album.Visibility.PUBLIC)
        if user is not None and user.is_authenticated:
            rule |= models.Q(owner=user)
        if key:
            rule |= models.Q(secret=key)
        return self.filter(rule)

    def listed_for(self, user) -> AlbumQuerySet:
        """The albums listed to `user` (index, API list): public ones and their own; never someone
        else's unlisted one, not even to staff or with its key."""
        rule = models.Q(visibility=Album.Visibility.PUBLIC)
        if user is not None and user.is_authenticated:
            rule |= models.Q(owner=user)
        return self.filter(rule)

    def managed_by(self, user) -> AlbumQuerySet:
        """The albums `user` may change: their own, any for staff."""
        if user is None or not user.is_authenticated:
            return self.none()
        return self if user.is_staff else self.filter(owner=user)

    # --- The album's version -----------------------------------------------------------------

    def bump_version(self, *, collage_stale: bool = True, **fields) -> int:
        """The one place `pictures_version` moves: every cached page, API page and ETag of these
        albums follows it. `collage_stale` also asks for a new collage (not when the collage itself
        changed); `fields` are saved in the same UPDATE. One statement, no read."""
        if collage_stale:
            fields["collage_stale"] = True
        return self.update(pictures_version=models.F("pictures_version") + 1, **fields)

    def due(self, now: datetime | None = None) -> AlbumQuerySet:
        """Active albums whose next fetch time has come (or was never set)."""
        now = now or timezone.now()
        return self.filter(is_active=True).filter(
            models.Q(next_fetch_at__isnull=True) | models.Q(next_fetch_at__lte=now)
        )


class Album(models.Model):
    """A photo album fed by one hashtag."""

    class Visibility(models.TextChoices):
        PUBLIC = "public", "Public: listed on the front page"
        UNLISTED = "unlisted", "Unlisted: only people with the secret link"

    class Moderation(models.TextChoices):
        AUTOMATIC = "automatic", "Automatic: new pictures are shown at once"
        APPROVE_FIRST = "approve", "Approve first: new pictures wait for approval"

    class SensitiveMedia(models.TextChoices):
        SKIP = "skip", "Skip posts flagged sensitive"
        HOLD = "hold", "Hold them for review"
        ALLOW = "allow", "Show them like any other"

    class BlockedWordsAction(models.TextChoices):
        SKIP = "skip", "Skip posts containing a blocked word"
        HOLD = "hold", "Hold them for review"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, models.CASCADE, related_name="albums")
    hashtag = models.CharField(
        max_length=MAX_LENGTH,
        unique=True,
        validators=[validate_hashtag],
        help_text="Normalised: no #, case-folded (see albums/hashtags.py).",
    )
    search_hashtag = models.CharField(
        max_length=MAX_LENGTH,
        blank=True,
        help_text="The hashtag as people write it (#Straße, #İstanbul), searched as is; empty: the hashtag.",
    )
    title = models.CharField(max_length=200, blank=True)
    description = models.TextField(max_length=2000, blank=True)
    created = models.DateTimeField(default=timezone.now)
    is_active = models.BooleanField("fetching active", default=True)
    visibility = models.CharField(max_length=10, choices=Visibility.choices, default=Visibility.PUBLIC)
    secret = models.CharField(max_length=64, default=new_secret, unique=True, editable=False)
    owner_emails = models.BooleanField(
        "milestone emails to the owner", default=True, help_text="Email the owner when a milestone is reached."
    )
    moderation = models.CharField(max_length=10, choices=Moderation.choices, default=Moderation.AUTOMATIC)
    sensitive_media = models.CharField(max_length=10, choices=SensitiveMedia.choices, default=SensitiveMedia.HOLD)
    frame_origins = models.TextField(
        "sites that may show the wall",
        max_length=2000,
        blank=True,
        validators=[validate_origins],
        help_text="Origins (like https://example.com), one per line, allowed to embed the album's slideshow in a "
        "frame. Empty: none (the default).",
    )
    blocked_words_action = models.CharField(
        "posts with a blocked word",
        max_length=10,
        choices=BlockedWordsAction.choices,
        default=BlockedWordsAction.HOLD,
        help_text="What happens to a new post whose text contains a blocked word (this album's or a global one).",
    )

    # Fetch state of the album as a whole, owned by tweets.services (the fetch_tweets command); each
    # source's cursors, back-off, rate limit and last result are in tweets.AlbumSource.
    last_fetch_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    failures = models.PositiveIntegerField(default=0, help_text="Consecutive failed fetches (for back-off).")
    next_fetch_at = models.DateTimeField(null=True, blank=True)
    collage_stale = models.BooleanField(default=False, help_text="Pictures changed since the collage was built.")
    pictures_version = models.PositiveIntegerField(
        default=0, help_text="Bumped by every change to the album's pictures: cached pages and ETags follow it."
    )
    # Recounted by albums.services.pictures_changed with the version, so pages and lists of albums
    # never count picture rows per request (the index counted 100,000 rows on every view: 0.6 s).
    visible_count = models.PositiveIntegerField(default=0, editable=False, help_text="Visible pictures.")

    objects = AlbumQuerySet.as_manager()

    class Meta:
        ordering = ["hashtag"]
        indexes = [
            # fetch_tweets: active albums whose next fetch is due.
            models.Index(fields=["is_active", "next_fetch_at"], name="album_due_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.hashtag}"

    def get_absolute_url(self) -> str:
        return reverse("albums:album-detail", args=[self.hashtag])

    @property
    def search_term(self) -> str:
        """What sources are asked for: the hashtag as written, or its folded key for older albums."""
        return self.search_hashtag or self.hashtag

    @property
    def display_title(self) -> str:
        return self.title or f"#{self.hashtag}"

    def can_see(self, user, key: str | None = None) -> bool:
        """AlbumQuerySet.visible_to() for this one album."""
        if self.visibility == Album.Visibility.PUBLIC or self.can_manage(user):
            return True
        return bool(key) and key == self.secret

    def can_manage(self, user) -> bool:
        """AlbumQuerySet.managed_by() for this one album: its owner or staff."""
        return bool(user is not None and user.is_authenticated and (user.is_staff or user.pk == self.owner_id))

    def link_key(self, key: str | None) -> str | None:
        """The key to carry on links inside the album: the unlisted album's secret when `key` is it."""
        if key and self.visibility == Album.Visibility.UNLISTED and key == self.secret:
            return key
        return None

    def with_key(self, url: str) -> str:
        """A link into the album as its owner hands it out (dashboard, emails, QR codes, the wall's
        embed snippet): an unlisted album's link carries its secret, or whoever follows it without
        being signed in gets a 404. The one place that writes the `?key=` rule."""
        return f"{url}?key={self.secret}" if self.visibility == Album.Visibility.UNLISTED else url

    @property
    def shared_url(self) -> str:
        """The album's page, to share (`with_key`)."""
        return self.with_key(self.get_absolute_url())

    @property
    def shared_wall_url(self) -> str:
        """The album's live wall, to share or embed (`with_key`)."""
        return self.with_key(reverse("albums:slideshow", args=[self.hashtag]))

    @property
    def frame_ancestors(self) -> list[str]:
        """The origins allowed to frame the wall (stored validated, so parsing cannot fail)."""
        return parse_origins(self.frame_origins)


class Follower(models.Model):
    """A signed-in person who follows someone else's album, for its milestone emails."""

    album = models.ForeignKey(Album, models.CASCADE, related_name="followers")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, models.CASCADE, related_name="follows")
    milestone_emails = models.BooleanField(default=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["album", "user"], name="follower_unique_album_user"),
        ]
        # The dashboard lists a user's follows: the user FK's own index serves it.

    def __str__(self) -> str:
        return f"{self.user} follows #{self.album.hashtag}"


class Milestone(models.Model):
    """A picture count an album has reached. The unique row decides it once."""

    album = models.ForeignKey(Album, models.CASCADE, related_name="milestones")
    threshold = models.PositiveIntegerField()
    count = models.PositiveIntegerField(help_text="Visible pictures when the milestone was reached.")
    reached_at = models.DateTimeField(default=timezone.now)
    notified_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(
        null=True, blank=True, help_text="Set while one process announces it, so no other sends it too."
    )
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["album", "threshold"]
        constraints = [
            models.UniqueConstraint(fields=["album", "threshold"], name="milestone_unique_album_threshold"),
        ]
        indexes = [
            # The retry sweep: milestones reached but not yet announced.
            models.Index(fields=["notified_at"], name="milestone_unsent_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.album.hashtag} reached {self.threshold}"


class MilestoneDelivery(models.Model):
    """One recipient's copy of a milestone email. Once sent, a retry of the milestone skips it."""

    milestone = models.ForeignKey(Milestone, models.CASCADE, related_name="deliveries")
    email = models.EmailField(max_length=254)
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["milestone", "pk"]
        constraints = [
            # One copy per recipient and milestone; the milestone's deliveries are read through it too.
            models.UniqueConstraint(fields=["milestone", "email"], name="milestonedelivery_unique_recipient"),
        ]

    def __str__(self) -> str:
        state = "sent" if self.sent_at else "not sent yet"
        return f"#{self.milestone.album.hashtag} {self.milestone.threshold} to {self.email}: {state}"
