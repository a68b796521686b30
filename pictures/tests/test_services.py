from __future__ import annotations

from datetime import UTC, datetime

from django.core.files.storage import default_storage

from everhash.testing.builders import make_album, photo_bytes
from pictures.models import Picture
from pictures.services import delete_album, delete_pictures, ingest_photo, load_signature_index
from tweets.sources import Photo, Post


def post(post_id: str = "1", *photos: Photo) -> Post:
    return Post(
        id=post_id,
        permalink=f"https://x.com/ana/status/{post_id}",
        author_handle="ana",
        author_name="Ana",
        text="#sunset",
        like_count=3,
        posted_at=datetime(2026, 11, 20, tzinfo=UTC),
        sensitive=False,
        photos=photos,
    )


def ingest(album, data: bytes, media_key: str = "3_1", index=None):
    photo = Photo(media_key=media_key, url="sample://x", width=0, height=0)
    return ingest_photo(
        album=album,
        source="x",
        post=post("1", photo),
        photo=photo,
        data=data,
        index=index if index is not None else load_signature_index(album=album),
    )


def test_it_stores_files_before_the_row_under_content_addressed_keys(album):
    outcome = ingest(album, photo_bytes("coffee.png"))
    assert outcome.kind == "added"
    picture = outcome.picture
    assert picture.original_key == f"originals/{picture.content_hash[:2]}/{picture.content_hash}.jpg"
    assert picture.renditions["square"] == {
        "key": f"renditions/{picture.content_hash[:2]}/{picture.content_hash}/square.jpg",
        "width": 400,
        "height": 400,
    }
    assert (picture.width, picture.height) == (600, 400)


def test_a_run_that_lost_the_race_for_a_media_key_counts_a_duplicate_not_an_error(album):
    # Two runs that each loaded the album's signatures before either stored the photo.
    first, second = load_signature_index(album=album), load_signature_index(album=album)
    assert ingest(album, photo_bytes("coffee.png"), index=first).kind == "added"
    outcome = ingest(album, photo_bytes("coffee.png", fmt="PNG"), index=second)
    assert (outcome.kind, outcome.reason) == ("duplicate", "concurrent")
    assert Picture.objects.count() == 1


def test_a_rejected_image_says_why(album):
    outcome = ingest(album, b"GIF89a-but-not-really")
    assert outcome.kind == "rejected"
    assert outcome.reason in {"format", "truncated", "decode"}
    assert outcome.message


def test_deleting_a_picture_keeps_files_another_album_still_uses(album, other):
    beach = make_album(owner=other, hashtag="beach")
    data = photo_bytes("rocket.jpg")
    kept = ingest(beach, data).picture
    gone = ingest(album, data).picture
    only_here = ingest(album, photo_bytes("chelsea.png"), media_key="3_2").picture
    delete_pictures(pictures=Picture.objects.filter(album=album))
    assert default_storage.exists(kept.original_key)
    assert all(default_storage.exists(r["key"]) for r in gone.renditions.values())
    assert not default_storage.exists(only_here.original_key)
    assert not any(default_storage.exists(r["key"]) for r in only_here.renditions.values())


def test_deleting_an_album_removes_its_pictures_and_files(album):
    picture = ingest(album, photo_bytes("chelsea.png")).picture
    delete_album(album=album)
    assert not Picture.objects.exists()
    assert not default_storage.exists(picture.original_key)
