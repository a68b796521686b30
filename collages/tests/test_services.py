from __future__ import annotations

import hashlib
import logging
from datetime import timedelta
from io import BytesIO

import pytest
import time_machine
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone
from PIL import Image

from albums.models import Album
from collages import builder, services
from collages.models import Collage
from collages.services import Outcome, build_collage, build_stale_collages, delete_collage
from everhash.testing.builders import (
    PALETTE,
    make_album,
    make_coloured_picture,
    make_coloured_pictures,
    make_picture,
    solid_jpeg,
)
from everhash.testing.fixtures import fail_collage_encoding
from pictures.models import Picture


def copy_pictures(pictures: list[Picture], *, album: Album) -> None:
    """The same photos in another album: same content, same stored files, other picture ids."""
    for picture in pictures:
        make_picture(
            album=album, content_hash=picture.content_hash, like_count=picture.like_count, renditions=picture.renditions
        )


def tile_colours(key: str, fmt: builder.Format, count: int) -> list[tuple[int, int, int]]:
    with default_storage.open(key, "rb") as file:
        image = Image.open(file)
        image.load()
    assert image.size == fmt.size
    return [image.getpixel((box.x + box.width // 2, box.y + box.height // 2)) for box in builder.layout(fmt, count)]


def same_colour(seen, wanted) -> bool:
    return all(abs(a - b) <= 10 for a, b in zip(seen, wanted, strict=True))


def assert_shows(collage: Collage, colours: list[tuple[int, int, int]]) -> None:
    assert collage.picture_count == len(colours)
    for fmt, key in ((builder.LANDSCAPE, collage.image_key), (builder.SQUARE, collage.square_key)):
        seen = tile_colours(key, fmt, len(colours))
        assert all(same_colour(s, w) for s, w in zip(seen, colours, strict=True)), (fmt.name, seen, colours)


def stored_collage_files() -> set[str]:
    if not default_storage.exists("collages"):
        return set()
    return {f"collages/{name}" for name in default_storage.listdir("collages")[1]}


def test_it_builds_a_share_image_and_a_square_from_the_most_liked_pictures(album):
    make_coloured_picture(album, PALETTE[0], like_count=5)
    make_coloured_picture(album, PALETTE[1], like_count=9)
    make_coloured_picture(album, PALETTE[2], like_count=1)
    Album.objects.filter(pk=album.pk).update(collage_stale=True)

    collage = build_collage(album=album)

    assert collage == Collage.objects.get(album=album)
    assert_shows(collage, [PALETTE[1], PALETTE[0], PALETTE[2]])
    for key, suffix in ((collage.image_key, ".jpg"), (collage.square_key, "-square.jpg")):
        with default_storage.open(key, "rb") as file:
            data = file.read()
        assert key == f"collages/{hashlib.sha256(data).hexdigest()}{suffix}"
        assert data[:2] == b"\xff\xd8"  # JPEG
    # The index's tiles get a 400x400 copy of the square, a fraction of its bytes.
    with default_storage.open(collage.small_key, "rb") as small, default_storage.open(collage.square_key, "rb") as big:
        small_data, big_data = small.read(), big.read()
    assert Image.open(BytesIO(small_data)).size == (400, 400)
    assert collage.small_key.endswith("-square-400.jpg") and len(small_data) < len(big_data) / 3
    assert stored_collage_files() == {collage.image_key, collage.square_key, collage.small_key}
    album.refresh_from_db()
    assert album.collage_stale is False


def test_equal_likes_go_to_the_newest_picture(album):
    now = timezone.now()
    make_coloured_picture(album, PALETTE[0], like_count=3, added_at=now - timedelta(hours=2))
    make_coloured_picture(album, PALETTE[1], like_count=3, added_at=now)
    make_coloured_picture(album, PALETTE[2], like_count=3, added_at=now - timedelta(hours=1))

    assert_shows(build_collage(album=album), [PALETTE[1], PALETTE[2], PALETTE[0]])


def test_hidden_and_pending_pictures_never_appear(album):
    make_coloured_picture(album, PALETTE[0], like_count=1)
    make_coloured_picture(album, PALETTE[1], like_count=500, status=Picture.Status.HIDDEN)
    make_coloured_picture(album, PALETTE[2], like_count=400, status=Picture.Status.PENDING)
    make_coloured_picture(album, PALETTE[3], like_count=2)

    assert_shows(build_collage(album=album), [PALETTE[3], PALETTE[0]])


def test_at_most_sixteen_pictures_are_shown(album):
    make_coloured_pictures(album, 18)

    collage = build_collage(album=album)

    assert builder.MAX_PICTURES == 16
    assert_shows(collage, PALETTE[:16])


def test_the_same_pictures_give_the_same_bytes_and_the_same_keys(album, owner):
    pictures = make_coloured_pictures(album, 7)
    first = build_collage(album=album)
    with default_storage.open(first.image_key, "rb") as file:
        first_bytes = file.read()

    rebuilt = build_collage(album=album, force=True)
    # Another album showing the same photos (the same photo may be in two albums) shares the files.
    twin = make_album(owner=owner, hashtag="dusk")
    copy_pictures(pictures, album=twin)
    twin_collage = build_collage(album=twin)

    assert (rebuilt.image_key, rebuilt.square_key) == (first.image_key, first.square_key)
    with default_storage.open(rebuilt.image_key, "rb") as file:
        assert file.read() == first_bytes
    assert (twin_collage.image_key, twin_collage.square_key) == (first.image_key, first.square_key)
    assert twin_collage.fingerprint != first.fingerprint  # other picture ids
    assert stored_collage_files() == {first.image_key, first.square_key, first.small_key}


def test_nothing_is_rebuilt_when_nothing_changed(album, monkeypatch):
    make_coloured_pictures(album, 3)
    with time_machine.travel(timezone.now() - timedelta(days=1), tick=False):
        collage = build_collage(album=album)
    files = stored_collage_files()
    Album.objects.filter(pk=album.pk).update(collage_stale=True)
    monkeypatch.setattr(builder, "encode", lambda images: pytest.fail("the collage was composed again"))
    monkeypatch.setattr(services, "_read", lambda key: pytest.fail("the renditions were read again"))

    summary = build_stale_collages()

    assert [(result.album, result.outcome) for result in summary.results] == [(album, Outcome.UNCHANGED)]
    again = Collage.objects.get(album=album)
    assert again.built_at == collage.built_at
    assert (again.image_key, again.square_key, again.fingerprint) == (
        collage.image_key,
        collage.square_key,
        collage.fingerprint,
    )
    assert stored_collage_files() == files
    album.refresh_from_db()
    assert album.collage_stale is False


def test_hiding_a_picture_rebuilds_the_collage_without_it(album):
    hero, *others = make_coloured_pictures(album, 4)
    before = build_collage(album=album)

    Picture.objects.filter(pk=hero.pk).update(status=Picture.Status.HIDDEN)
    Album.objects.filter(pk=album.pk).update(collage_stale=True)
    summary = build_stale_collages()

    after = Collage.objects.get(album=album)
    assert summary.counts[Outcome.BUILT] == 1
    assert after.pk == before.pk
    assert after.fingerprint != before.fingerprint
    assert_shows(after, PALETTE[1:4])
    # The old images are gone from storage; only the new ones remain.
    assert stored_collage_files() == {after.image_key, after.square_key, after.small_key}


def test_a_change_of_ranking_rebuilds_the_collage(album):
    first, second = make_coloured_pictures(album, 2)
    before = build_collage(album=album)

    Picture.objects.filter(pk=second.pk).update(like_count=5000)
    after = build_collage(album=album)

    assert after.fingerprint != before.fingerprint
    assert_shows(after, [PALETTE[1], PALETTE[0]])


def test_force_rebuilds_an_unchanged_collage_under_the_same_keys(album):
    make_coloured_pictures(album, 2)
    with time_machine.travel(timezone.now() - timedelta(days=1), tick=False):
        before = build_collage(album=album)

    after = build_collage(album=album, force=True)

    assert after.built_at > before.built_at
    assert (after.image_key, after.square_key, after.fingerprint) == (
        before.image_key,
        before.square_key,
        before.fingerprint,
    )
    assert stored_collage_files() == {after.image_key, after.square_key, after.small_key}


def test_a_picture_whose_files_are_missing_is_skipped_for_the_next_one(album, caplog):
    hero, *others = make_coloured_pictures(album, 4)
    for rendition in hero.renditions.values():
        default_storage.delete(rendition["key"])

    with caplog.at_level(logging.WARNING, logger="everhash.collages"):
        collage = build_collage(album=album)

    assert_shows(collage, PALETTE[1:4])
    assert hero.renditions["medium"]["key"] in caplog.text


def test_a_missing_medium_falls_back_to_the_large_rendition(album):
    make_coloured_picture(album, PALETTE[0], like_count=3)
    second = make_coloured_picture(album, PALETTE[1], like_count=2, large_colour=PALETTE[10])
    make_coloured_picture(album, PALETTE[2], like_count=1)
    default_storage.delete(second.renditions["medium"]["key"])

    collage = build_collage(album=album)

    assert_shows(collage, [PALETTE[0], PALETTE[10], PALETTE[2]])


def test_a_damaged_rendition_is_skipped(album):
    pictures = make_coloured_pictures(album, 3)
    for rendition in pictures[2].renditions.values():
        default_storage.delete(rendition["key"])
        default_storage.save(rendition["key"], ContentFile(solid_jpeg(PALETTE[2], (1024, 768))[:900]))

    assert_shows(build_collage(album=album), PALETTE[:2])


def test_a_picture_without_renditions_is_skipped(album):
    make_coloured_pictures(album, 2)
    make_picture(album=album, like_count=5000, renditions={})

    assert_shows(build_collage(album=album), PALETTE[:2])


def test_big_tiles_are_cut_from_the_large_rendition_and_small_ones_from_the_medium(album):
    # The two renditions differ in colour here, to see which one each tile came from.
    make_coloured_picture(album, PALETTE[0], large_colour=PALETTE[1])
    assert_shows(build_collage(album=album), [PALETTE[1]])

    for _ in range(15):
        make_coloured_picture(album, PALETTE[0], like_count=0, large_colour=PALETTE[1])
    collage = build_collage(album=album)
    landscape = tile_colours(collage.image_key, builder.LANDSCAPE, 16)
    # The hero of a 16-picture share image (594x466) fits in a 1024x768 medium; so do the small tiles.
    assert all(same_colour(colour, PALETTE[0]) for colour in landscape)


def test_an_album_without_visible_pictures_has_no_collage(album):
    assert build_collage(album=album) is None
    assert not Collage.objects.filter(album=album).exists()

    picture = make_coloured_picture(album, PALETTE[0])
    collage = build_collage(album=album)
    Picture.objects.filter(pk=picture.pk).update(status=Picture.Status.HIDDEN)
    Album.objects.filter(pk=album.pk).update(collage_stale=True)

    summary = build_stale_collages()

    assert summary.results[0].outcome == Outcome.REMOVED
    assert not Collage.objects.filter(album=album).exists()
    assert not default_storage.exists(collage.image_key)
    assert not default_storage.exists(collage.square_key)
    assert not default_storage.exists(collage.small_key)
    album.refresh_from_db()
    assert album.collage_stale is False


def test_deleting_a_collage_keeps_files_another_album_still_shows(album, owner):
    pictures = make_coloured_pictures(album, 2)
    twin = make_album(owner=owner, hashtag="dusk")
    copy_pictures(pictures, album=twin)
    collage = build_collage(album=album)
    build_collage(album=twin)

    assert delete_collage(album=album) is True

    assert not Collage.objects.filter(album=album).exists()
    assert default_storage.exists(collage.image_key)
    assert delete_collage(album=twin) is True
    assert not default_storage.exists(collage.image_key)
    assert delete_collage(album=twin) is False


def test_only_stale_albums_are_built(album, owner):
    make_coloured_pictures(album, 2)
    quiet = make_album(owner=owner, hashtag="dusk")
    make_coloured_picture(quiet, PALETTE[5])
    Album.objects.filter(pk=album.pk).update(collage_stale=True)

    summary = build_stale_collages()

    assert [(result.album.pk, result.outcome) for result in summary.results] == [(album.pk, Outcome.BUILT)]
    assert not Collage.objects.filter(album=quiet).exists()


def test_a_failed_build_is_recorded_and_the_album_stays_stale(album, owner, monkeypatch, caplog):
    make_coloured_pictures(album, 2)
    before = build_collage(album=album)
    healthy = make_album(owner=owner, hashtag="dusk", collage_stale=True)
    make_coloured_picture(healthy, PALETTE[4])
    make_coloured_picture(album, PALETTE[3], like_count=5000)
    Album.objects.filter(pk=album.pk).update(collage_stale=True)
    fail_collage_encoding(monkeypatch, pictures=3)

    with caplog.at_level(logging.ERROR, logger="everhash.collages"):
        summary = build_stale_collages()

    assert {result.album.hashtag: result.outcome for result in summary.results} == {
        "sunset": Outcome.FAILED,
        "dusk": Outcome.BUILT,
    }
    assert summary.failed[0].error == "OSError: disk full"
    assert "Collage of #sunset failed" in caplog.text
    album.refresh_from_db()
    assert album.collage_stale is True
    assert Collage.objects.get(album=album).image_key == before.image_key
    assert default_storage.exists(before.image_key)


def test_a_collage_written_by_another_run_meanwhile_wins(album, monkeypatch):
    make_coloured_pictures(album, 2)
    build_collage(album=album)
    files = stored_collage_files()
    make_coloured_picture(album, PALETTE[3], like_count=5000)
    real_encode = builder.encode

    def encode_while_another_run_writes(images):
        jpegs = real_encode(images)
        Collage.objects.filter(album=album).update(fingerprint="0" * 64, image_key="collages/other.jpg")
        return jpegs

    monkeypatch.setattr(builder, "encode", encode_while_another_run_writes)

    result = services._build(album=album, force=False)

    assert result.outcome == Outcome.CONFLICT
    assert Collage.objects.get(album=album).image_key == "collages/other.jpg"
    album.refresh_from_db()
    assert album.collage_stale is True  # the next run settles it
    # The images this run made are not left behind.
    assert stored_collage_files() == files
