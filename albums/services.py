"""Album workflows: milestones and their announcement."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from albums.hashtags import hashtag_as_written, normalize_hashtag
from albums.models import Album, Follower, Milestone, MilestoneDelivery, new_secret
from albums.signals import milestone_reached
from pictures.models import Picture

logger = logging.getLogger("everhash.milestones")

# A claim older than this is considered abandoned (the process died while sending).
CLAIM_TIMEOUT = timedelta(minutes=10)


def pictures_changed(*, album_ids, collage_stale: bool = True) -> None:
    """The album's pictures changed (added, moderated, deleted, likes): mark the collage stale,
    bump the version that every cached page and ETag of the album follows, and recount the
    visible pictures kept on the album (an index range scan in the same UPDATE, so pages and
    lists of albums never count rows). One UPDATE, no read."""
    album_ids = list(album_ids)
    if album_ids:
        Album.objects.filter(pk__in=album_ids).bump_version(
            collage_stale=collage_stale, visible_count=Picture.objects.visible_count()
        )


def record_milestones(*, album: Album) -> list[Milestone]:
    """Record every configured threshold the album's visible count has reached.

    The unique (album, threshold) row decides each milestone once: a jump from
    95 to 230 records 100 and 200; a concurrent run that tries the same insert
    gets an IntegrityError and moves on. Returns the rows this call created.
    """
    count = album.pictures.visible().count()
    reached = [t for t in settings.EVERHASH_MILESTONES if t <= count]
    if not reached:
        return []
    known = set(Milestone.objects.filter(album=album, threshold__in=reached).values_list("threshold", flat=True))
    created = []
    for threshold in reached:
        if threshold in known:
            continue
        try:
            with transaction.atomic():
                created.append(Milestone.objects.create(album=album, threshold=threshold, count=count))
        except IntegrityError:
            continue  # another run recorded it first
    return created


def _claim(milestone: Milestone) -> bool:
    """Claim a milestone for announcing: a conditional update only one process wins."""
    now = timezone.now()
    return bool(
        Milestone.objects.filter(pk=milestone.pk, notified_at__isnull=True)
        .filter(Q(claimed_at__isnull=True) | Q(claimed_at__lt=now - CLAIM_TIMEOUT))
        .update(claimed_at=now)
    )


def announce_milestone(*, milestone: Milestone) -> bool:
    """Send `milestone_reached` for a recorded milestone, once. True when it went out.

    A failure (SMTP down...) is recorded and the claim released, so a later run
    retries; a success is recorded so nothing sends it again.
    """
    if not _claim(milestone):
        return False
    album = milestone.album
    try:
        milestone_reached.send(
            sender=Album, album=album, threshold=milestone.threshold, count=milestone.count, milestone=milestone
        )
    except Exception as exc:
        logger.warning("Milestone %s of #%s not announced yet: %s", milestone.threshold, album.hashtag, exc)
        Milestone.objects.filter(pk=milestone.pk).update(
            claimed_at=None, attempts=milestone.attempts + 1, last_error=str(exc)[:1000]
        )
        return False
    Milestone.objects.filter(pk=milestone.pk).update(
        notified_at=timezone.now(), attempts=milestone.attempts + 1, last_error=""
    )
    return True


class MilestoneUndelivered(Exception):
    """Some recipients did not get the milestone's email yet; the others are recorded as served."""


def deliver_milestone(*, milestone: Milestone, recipients: Sequence[str], send: Callable[[str], None]) -> None:
    """Send a milestone's email to each recipient who has not had it, recording each copy sent.

    A recipient's failure (a 451 for one address) does not stop the others; it raises
    MilestoneUndelivered afterwards, so the milestone stays pending and the retry sends only to
    those not yet served. The milestone's claim keeps two processes from sending at once.
    """
    served = set(milestone.deliveries.filter(sent_at__isnull=False).values_list("email", flat=True))
    failures = []
    for email in recipients:
        if email in served:
            continue
        delivery, _ = MilestoneDelivery.objects.get_or_create(milestone=milestone, email=email)
        try:
            send(email)
        except Exception as exc:
            MilestoneDelivery.objects.filter(pk=delivery.pk).update(
                attempts=F("attempts") + 1, last_error=str(exc)[:1000]
            )
            failures.append(f"{email}: {exc}")
            continue
        MilestoneDelivery.objects.filter(pk=delivery.pk).update(
            sent_at=timezone.now(), attempts=F("attempts") + 1, last_error=""
        )
    if failures:
        raise MilestoneUndelivered(f"Not delivered to {len(failures)} recipient(s): {'; '.join(failures)}")


def announce_pending_milestones(*, album: Album | None = None) -> int:
    """Announce every recorded milestone that has not gone out yet (new or failed). Returns how many went out."""
    pending = Milestone.objects.filter(notified_at__isnull=True).select_related("album", "album__owner")
    if album is not None:
        pending = pending.filter(album=album)
    return sum(announce_milestone(milestone=m) for m in pending.order_by("album_id", "threshold"))


def update_milestones(*, album: Album) -> int:
    """Record what the album reached and announce what is pending. Returns emails sent."""
    record_milestones(album=album)
    return announce_pending_milestones(album=album)


def albums_for_tags(*, tags: list[str]) -> list[Album]:
    """The albums named on a command line (`--album TAG`), in order. ValueError says which tag is wrong."""
    albums = []
    for raw in tags:
        try:
            tag = normalize_hashtag(raw)
        except ValidationError as exc:
            raise ValueError(f"{raw!r}: {exc.messages[0]}") from None
        try:
            albums.append(Album.objects.get(hashtag=tag))
        except Album.DoesNotExist:
            raise ValueError(f"There is no album for #{tag}.") from None
    return albums


class AlbumExists(Exception):
    def __init__(self, album: Album) -> None:
        super().__init__(f"#{album.hashtag} already has an album.")
        self.album = album


class QuotaReached(Exception):
    """The account holds as many albums, or follows as many, as one account may; the message says so."""


def _lock_account(user) -> None:
    """Serialise an account's creations: two requests at once cannot both pass a quota count."""
    get_user_model().objects.select_for_update().filter(pk=user.pk).values_list("pk").first()


def check_album_quota(*, owner) -> None:
    """QuotaReached when `owner` may not own one more album (EVERHASH_MAX_ALBUMS_PER_USER; staff are exempt).

    Call it inside the transaction that creates the album.
    """
    if owner.is_staff:
        return
    _lock_account(owner)
    limit = settings.EVERHASH_MAX_ALBUMS_PER_USER
    if Album.objects.filter(owner=owner).count() >= limit:
        raise QuotaReached(
            f"You have {limit} albums, the most one account can have: delete one you no longer need to add another."
        )


def create_album(*, owner, hashtag: str, written: str = "", **fields) -> Album:
    """A new album for a normalised hashtag, due for its first fetch at once (next_fetch_at empty
    unless `fields` say otherwise; `fields` are other Album fields: title, visibility...).

    `written` is the hashtag as its owner typed it, which sources search (see hashtag_as_written).
    QuotaReached when the owner has as many albums as an account may; AlbumExists when the
    hashtag has an album already (also one created at the same moment by someone else).
    """
    search = hashtag_as_written(written) if written and normalize_hashtag(written) == hashtag else ""
    try:
        with transaction.atomic():
            check_album_quota(owner=owner)
            return Album.objects.create(
                **{"next_fetch_at": None, **fields}, owner=owner, hashtag=hashtag, search_hashtag=search
            )
    except IntegrityError:
        raise AlbumExists(Album.objects.get(hashtag=hashtag)) from None


def rotate_secret(*, album: Album) -> tuple[str, int]:
    """A new secret link for an unlisted album; the old link stops working.

    Its followers came in through the old link, so their access ends too: they stop following it
    (no more dashboard entry or milestone emails). Returns the new secret and how many followers
    went; the owner and staff, who see it anyway, are never followers to drop.
    """
    secret = new_secret()
    with transaction.atomic():
        Album.objects.filter(pk=album.pk).update(secret=secret)
        dropped = 0
        if album.visibility == Album.Visibility.UNLISTED:
            dropped, _ = (
                Follower.objects.filter(album=album)
                .exclude(user_id=album.owner_id)
                .exclude(user__is_staff=True)
                .delete()
            )
    return secret, dropped


def follow(*, album: Album, user) -> None:
    """Follow an album (again: nothing changes). QuotaReached past EVERHASH_MAX_FOLLOWS_PER_USER."""

    with transaction.atomic():
        _lock_account(user)
        follows = Follower.objects.filter(user=user)
        limit = settings.EVERHASH_MAX_FOLLOWS_PER_USER
        if not follows.filter(album=album).exists() and follows.count() >= limit:
            raise QuotaReached(f"You follow {limit} albums, the most one account can: unfollow one first.")
        Follower.objects.get_or_create(album=album, user=user)


def unfollow_hashtag(*, hashtag: str, user) -> str | None:
    """Stop following the album of `hashtag`, whether or not `user` may still see it. The hashtag
    when they followed it, None when they did not."""
    deleted, _ = Follower.objects.filter(album__hashtag=hashtag, user=user).delete()
    return hashtag if deleted else None


def milestone_recipients(*, album: Album) -> list[str]:
    """Who gets an album's milestone emails: its owner (unless turned off) and followers who want them."""
    recipients = [album.owner.email] if album.owner_emails and album.owner.is_active else []
    followers = Follower.objects.filter(album=album, milestone_emails=True, user__is_active=True)
    recipients += [email for email in followers.values_list("user__email", flat=True) if email not in recipients]
    return recipients
