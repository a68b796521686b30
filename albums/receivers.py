"""Receivers of the product's signals (connected in AlbumsConfig.ready)."""

from __future__ import annotations

from django.dispatch import receiver
from django.urls import reverse

from albums.models import Album, Milestone
from albums.services import deliver_milestone, milestone_recipients
from albums.signals import milestone_reached
from everhash.emails import absolute_url, send_email


@receiver(milestone_reached, dispatch_uid="email_owner_on_milestone")
def email_owner_on_milestone(sender, *, album: Album, threshold: int, count: int, milestone: Milestone, **kwargs):
    """Email the owner and the followers who want it: the album's name, count, link and latest pictures.

    One message per recipient (nobody sees the others' addresses), each recorded once sent. A
    failure raises, so the announcement is retried on the next run, for the recipients not served.
    """
    pictures = list(album.pictures.visible().newest_first()[:6])
    for picture in pictures:
        picture.email_thumb_url = absolute_url(picture.thumb_url)
    context = {
        "album": album,
        "threshold": threshold,
        "count": count,
        "pictures": pictures,
        "album_url": absolute_url(album.shared_url),  # with the key of an unlisted album
        "settings_url": absolute_url(reverse("albums:dashboard")),
    }

    def send(email: str) -> None:
        send_email(to=[email], template="milestone", context={**context, "is_owner": email == album.owner.email})

    deliver_milestone(milestone=milestone, recipients=milestone_recipients(album=album), send=send)
