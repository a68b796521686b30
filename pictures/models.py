from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Value
from django.db.models.functions import Coalesce, Lower
from django.urls import reverse
from django.utils import timezone

from albums.models import Album
from everhash.lib.media import media_url


class Source(models.TextChoices):
    """The network a picture's post belongs to: post ids and author handles are unique within it
    (a Mastodon status read from two instances is one post, under its `uri`)."""

    X = "x", "X (Twitter)"
    MASTODON = "mastodon", "Mastodon"
    BLUESKY = "bluesky", "Bluesky"
    SAMPLE = "sample", "Bundled sample"


class PictureQuerySet(models.QuerySet["Picture"]):
    def visible(self) -> PictureQuerySet:
        return self.filter(status=Picture.Status.VISIBLE)

    def newest_first(self) -> PictureQuerySet:
        return self.order_by("-added_at", "-id")

    def most_liked(self) -> PictureQuerySet:
        return self.order_by("-like_count", "-added_at", "-id")

    def visible_count(self, *, album: str = "pk", distinct: str = "", since=None) -> Coalesce:
        """The one visible-picture count annotation, per album of the outer query:
        `Album.objects.annotate(picture_count=Picture.objects.visible_count())`, or through a
        relation (`album="album_id"` on followers). A correlated subquery along the
        (album, status, added_at) index: no join, so several counts do not multiply each other.
        `distinct` counts distinct values of a column (authors); `since` only pictures added since then.
        The plain visible count is also kept on the album (`Album.visible_count`): read that where
        nothing else is counted.
        """
        return self.count_per_album(status=Picture.Status.VISIBLE, album=album, distinct=distinct, since=since)

    def count_per_album(self, *, status: str, album: str = "pk", distinct: str = "", since=None) -> Coalesce:
        """`visible_count` for pictures of any status (the pictures awaiting approval, say)."""
        pictures = self.filter(status=status, album=models.OuterRef(album))
        if since is not None:
            pictures = pictures.filter(added_at__gte=since)
        counted = models.Count(distinct, distinct=True) if distinct else models.Count("*")
        return Coalesce(models.Subquery(pictures.order_by().values("album").annotate(n=counted).values("n")), 0)


class Picture(models.Model):
    """One photo of one post, stored in one album."""

    class Status(models.TextChoices):
        VISIBLE = "visible", "Visible"
        HIDDEN = "hidden", "Hidden"
        PENDING = "pending", "Pending review"

    album = models.ForeignKey(Album, models.CASCADE, related_name="pictures")
    source = models.CharField(max_length=20, choices=Source.choices)
    # Platform ids are strings: they exceed 32 bits (and 53 bits in JavaScript).
    post_id = models.CharField(max_length=255, help_text="The post's id on its network (a Mastodon or Bluesky URI).")
    media_key = models.CharField(max_length=100)
    permalink = models.URLField(max_length=500)
    author_handle = models.CharField(max_length=255, help_text="Without @; user@instance on Mastodon.")
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
    colour_profile = models.CharField(
        max_length=100,
        blank=True,
        default="",
        db_default="",  # so code deployed before this column still inserts rows while migrations run ahead of it
        help_text="The colour profile the original carried, when its renditions were converted from it to sRGB.",
    )
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
            # By-author page (its visible pictures, newest first: without status and id here SQLite
            # walked picture_newest_idx through the whole album instead) and author bans.
            models.Index(fields=["album", "author_handle", "status", "-added_at", "-id"], name="picture_author_idx"),
            # Takedown of a post across every album.
            models.Index(fields=["source", "post_id"], name="picture_post_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.media_key} by @{self.author_handle} in #{self.album.hashtag}"

    def rendition(self, name: str) -> dict | None:
        return self.renditions.get(name)

    def storage_url(self, key: str) -> str:
        return media_url(key)

    def image(self, name: str) -> dict:
        """A rendition's url, width and height (the original when the rendition is missing)."""
        rendition = self.rendition(name)
        if rendition is None:
            # The original has no public address: its access-checked view (pictures.views.original).
            url = reverse("pictures:picture-original", args=[self.pk])
            return {"url": url, "width": self.width, "height": self.height}
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

    @property
    def source_badge(self) -> str:
        """The network's short name, for the card's badge: "X", "Mastodon", "Bluesky", "Sample"."""
        return {Source.X: "X", Source.SAMPLE: "Sample"}.get(self.source) or Source(self.source).label


# Moderation (pictures/moderation.py writes these; the fetch reads them through its Policy).


def normalize_handle(value: str) -> str:
    """An author handle as block lists store it: without "@", lowercased (handles match case-insensitively)."""
    return value.strip().removeprefix("@").strip().lower()


def normalize_word(value: str) -> str:
    """A blocked word or phrase as stored: lowercased, single spaces."""
    return " ".join(value.split()).lower()


class BlockedAuthor(models.Model):
    """An author whose posts are never stored: in one album, or in every album (no album)."""

    album = models.ForeignKey(
        Album,
        models.CASCADE,
        null=True,
        blank=True,
        related_name="blocked_authors",
        help_text="Leave empty to block the author from every album.",
    )
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.X)
    handle = models.CharField(max_length=255, help_text="Without @; stored lowercased (user@instance on Mastodon).")
    reason = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+")
    created = models.DateTimeField(default=timezone.now)

    # The album's id, 0 for every album. NULL never equals NULL in a unique index, and
    # MySQL/MariaDB cannot create conditional unique constraints: this column can be unique.
    scope = models.GeneratedField(
        expression=Coalesce("album", Value(0)), output_field=models.BigIntegerField(), db_persist=True
    )

    class Meta:
        ordering = ["-created", "-id"]
        constraints = [
            # Also the index the fetch's Policy reads: the blocks of an album and the global ones
            # (scope IN (album id, 0)) for one source.
            models.UniqueConstraint(
                fields=["scope", "source", "handle"],
                name="blockedauthor_unique_scope",
                violation_error_message="This author is already blocked there.",
            ),
            models.CheckConstraint(condition=models.Q(handle=Lower("handle")), name="blockedauthor_handle_lowercase"),
        ]

    def __str__(self) -> str:
        where = f"#{self.album.hashtag}" if self.album_id else "every album"
        return f"@{self.handle} ({self.get_source_display()}) blocked from {where}"


class BlockedWord(models.Model):
    """A word or phrase that keeps a post out (or holds it for review, per album): in one album or all."""

    album = models.ForeignKey(
        Album,
        models.CASCADE,
        null=True,
        blank=True,
        related_name="blocked_words",
        help_text="Leave empty to block the word in every album.",
    )
    word = models.CharField(
        max_length=100, help_text="A word or phrase, matched as whole words, whatever the case; stored lowercased."
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+")
    created = models.DateTimeField(default=timezone.now)

    # The album's id, 0 for every album (see BlockedAuthor.scope).
    scope = models.GeneratedField(
        expression=Coalesce("album", Value(0)), output_field=models.BigIntegerField(), db_persist=True
    )

    class Meta:
        ordering = ["word", "id"]
        constraints = [
            # Also the index the fetch's Policy reads: an album's words and the global ones.
            models.UniqueConstraint(
                fields=["scope", "word"],
                name="blockedword_unique_scope",
                violation_error_message="This word is already blocked there.",
            ),
        ]

    def __str__(self) -> str:
        where = f"#{self.album.hashtag}" if self.album_id else "every album"
        return f"'{self.word}' blocked in {where}"


class Takedown(models.Model):
    """A post removed from every album, files included, and never fetched again."""

    source = models.CharField(max_length=20, choices=Source.choices, default=Source.X)
    post_id = models.CharField(max_length=255, help_text="The post's id on its network (a Mastodon or Bluesky URI).")
    reason = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+")
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created", "-id"]
        constraints = [
            # Also the index the fetch's Policy reads: a source's takedowns.
            models.UniqueConstraint(fields=["source", "post_id"], name="takedown_unique_post"),
        ]

    def __str__(self) -> str:
        return f"Takedown of {self.get_source_display()} post {self.post_id}"


class DeletedMedia(models.Model):
    """A photo a moderator deleted from an album: that album never fetches it again.

    Deleting a picture removes its row, so without this the next walk over older
    posts (a backfill) would see an unknown media key and store the photo again.
    """

    album = models.ForeignKey(Album, models.CASCADE, related_name="deleted_media")
    source = models.CharField(max_length=20, choices=Source.choices)
    media_key = models.CharField(max_length=100)
    post_id = models.CharField(max_length=255, help_text="The post's id on its network (a Mastodon or Bluesky URI).")
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created", "-id"]
        verbose_name_plural = "deleted media"
        constraints = [
            # Also the index the fetch reads: an album's deleted media keys for one source.
            models.UniqueConstraint(fields=["album", "source", "media_key"], name="deletedmedia_unique_media"),
        ]

    def __str__(self) -> str:
        return f"{self.media_key} deleted from #{self.album.hashtag}"


class ModerationAction(models.Model):
    """The audit log: who did what to which pictures, when. Written by pictures/moderation.py only."""

    class Kind(models.TextChoices):
        APPROVE = "approve", "Approved"
        HIDE = "hide", "Hid"
        UNHIDE = "unhide", "Unhid"
        DELETE = "delete", "Deleted"
        BAN = "ban", "Banned an author"
        UNBAN = "unban", "Lifted an author's ban"
        TAKEDOWN = "takedown", "Took a post down"
        LIFT_TAKEDOWN = "lift_takedown", "Lifted a takedown"
        BLOCK_WORD = "block_word", "Blocked a word"
        UNBLOCK_WORD = "unblock_word", "Unblocked a word"
        PAUSE = "pause", "Paused fetching"
        RESUME = "resume", "Resumed fetching"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Empty: done by the system.",
    )
    action = models.CharField(max_length=20, choices=Kind.choices)
    album = models.ForeignKey(
        Album,
        models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Empty: every album (or an album since deleted: see the hashtag).",
    )
    hashtag = models.CharField(max_length=100, blank=True, help_text="The album's hashtag, kept if it is deleted.")
    source = models.CharField(max_length=20, blank=True)
    post_id = models.CharField(max_length=255, blank=True)
    handle = models.CharField(max_length=255, blank=True)
    picture_ids = models.JSONField(default=list, blank=True, help_text="The pictures affected (the first 1000).")
    count = models.PositiveIntegerField(default=0, help_text="Pictures affected.")
    detail = models.TextField(blank=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [
            # The admin's log, newest first.
            models.Index(fields=["-created"], name="moderation_created_idx"),
            # One album's history in the admin.
            models.Index(fields=["album", "-created"], name="moderation_album_idx"),
        ]

    def __str__(self) -> str:
        who = self.user or "system"
        where = f"#{self.hashtag}" if self.hashtag else "every album"
        return f"{who}: {self.get_action_display()} in {where} ({self.created:%Y-%m-%d %H:%M})"
