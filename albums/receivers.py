"""Receivers of the product's signals (connected in AlbumsConfig.ready)."""

from __future__ import annotations

from django.dispatch import receiver

from albums.models import Album, Milestone
from albums.signals import milestone_reached
from everhash.emails import absolute_url, send_email


@receiver(milestone_reached, dispatch_uid="email_owner_on_milestone")
def email_owner_on_milestone(sender, *, album: Album, threshold: int, count: int, milestone: Milestone, **kwargs):
    """Email the owner: the album's name, count, link and a few of its latest pictures."""
    pictures = list(album.pictures.visible().newest_first()[:6])
    for picture in pictures:
        picture.email_thumb_url = absolute_url(picture.thumb_url)
    send_email(
        to=[album.owner.email],
        template="milestone",
        context={
            "album": album,
            "threshold": threshold,
            "count": count,
            "pictures": pictures,
            "album_url": absolute_url(album.get_absolute_url()),
        },
    )
