from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from albums.models import Album
from tweets.sample import SAMPLE_HASHTAGS


class Command(BaseCommand):
    help = "Create the bundled sample albums (owned by the first admin) when no X token is configured."

    def handle(self, *args, **options) -> None:
        if settings.EVERHASH_X_BEARER_TOKEN:
            self.stdout.write("An X token is configured: no sample albums (add real ones in the admin).")
            return
        owner = get_user_model().objects.filter(is_superuser=True).order_by("pk").first()
        if owner is None:
            raise CommandError("Create an admin first: manage.py ensure_admin")
        for hashtag, title in SAMPLE_HASHTAGS.items():
            album, created = Album.objects.get_or_create(hashtag=hashtag, defaults={"owner": owner, "title": title})
            if created:
                self.stdout.write(
                    f"Created the sample album #{hashtag}: http://127.0.0.1:8000{album.get_absolute_url()}"
                )
