"""An album's fetch cursors become the state of the source that produced them (tweets.AlbumSource):
X, or the bundled sample for the demo albums (albums whose pictures came from it, or that have none
yet and carry a sample hashtag)."""

from django.db import migrations

SAMPLE_HASHTAGS = {"everhashdemo", "catsofeverhash"}  # tweets.sample.SAMPLE_HASHTAGS when this was written


def move_cursors(apps, schema_editor):
    Album = apps.get_model("albums", "Album")
    AlbumSource = apps.get_model("tweets", "AlbumSource")
    Picture = apps.get_model("pictures", "Picture")
    for album in Album.objects.order_by("pk").iterator():
        state = (album.newest_post_id, album.backfill_token, album.backfill_since_id, album.backfill_done)
        if not any(state) and album.rate_limited_until is None:
            continue  # never fetched: its first fetch gives it a row per source
        networks = set(Picture.objects.filter(album=album).values_list("source", flat=True).distinct()[:2])
        sample = "sample" in networks or (not networks and album.hashtag in SAMPLE_HASHTAGS)
        AlbumSource.objects.get_or_create(
            album=album,
            key="sample" if sample else "x",
            defaults={
                "newest_post_id": album.newest_post_id,
                "backfill_token": album.backfill_token,
                "backfill_since_id": album.backfill_since_id,
                "backfill_done": album.backfill_done,
                "rate_limited_until": album.rate_limited_until,
                "last_fetch_at": album.last_fetch_at,
                "last_success_at": album.last_success_at,
            },
        )


def restore_cursors(apps, schema_editor):
    Album = apps.get_model("albums", "Album")
    AlbumSource = apps.get_model("tweets", "AlbumSource")
    for row in AlbumSource.objects.filter(key__in=["x", "sample"]).order_by("pk").iterator():
        Album.objects.filter(pk=row.album_id).update(
            newest_post_id=row.newest_post_id[:32],
            backfill_token=row.backfill_token[:200],
            backfill_since_id=row.backfill_since_id[:32],
            backfill_done=row.backfill_done,
            rate_limited_until=row.rate_limited_until,
        )


class Migration(migrations.Migration):
    dependencies = [
        ("tweets", "0005_album_sources"),
        ("pictures", "0004_fediverse_sources"),
    ]

    operations = [migrations.RunPython(move_cursors, restore_cursors)]
