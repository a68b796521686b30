from __future__ import annotations

import pytest
from django.db import IntegrityError, connection, transaction

from everhash.testing.builders import make_album, make_picture
from pictures.models import Picture, Source


def test_the_same_media_twice_in_one_album_is_rejected(album):
    make_picture(album=album, source=Source.X, media_key="3_1")
    with pytest.raises(IntegrityError), transaction.atomic():
        make_picture(album=album, source=Source.X, media_key="3_1")


def test_the_same_content_twice_in_one_album_is_rejected(album):
    make_picture(album=album, content_hash="a" * 64)
    with pytest.raises(IntegrityError), transaction.atomic():
        make_picture(album=album, content_hash="a" * 64)


def test_the_same_media_and_content_may_appear_in_two_albums(album, other):
    second = make_album(owner=other, hashtag="sunrise")
    make_picture(album=album, source=Source.X, media_key="3_9", content_hash="b" * 64)
    make_picture(album=second, source=Source.X, media_key="3_9", content_hash="b" * 64)
    assert Picture.objects.filter(media_key="3_9").count() == 2


def test_one_media_key_from_two_sources_is_two_pictures(album):
    make_picture(album=album, source=Source.X, media_key="1")
    make_picture(album=album, source=Source.SAMPLE, media_key="1")
    assert album.pictures.count() == 2


def test_post_ids_beyond_64_bits_survive(album):
    big = str(2**70)
    make_picture(album=album, post_id=big)
    assert Picture.objects.get(post_id=big).post_id == big


def test_emoji_survive_in_names_and_text(album):
    picture = make_picture(album=album, author_name="Ana 🌅✨", text="Golden hour 🌇 #sunset", alt_text="🐈")
    picture.refresh_from_db()
    assert picture.author_name == "Ana 🌅✨"
    assert picture.text == "Golden hour 🌇 #sunset"
    assert picture.alt_text == "🐈"


def test_visible_hides_hidden_and_pending_pictures(album):
    shown = make_picture(album=album)
    make_picture(album=album, status=Picture.Status.HIDDEN)
    make_picture(album=album, status=Picture.Status.PENDING)
    assert list(album.pictures.visible()) == [shown]


def test_a_row_inserted_by_code_that_predates_the_colour_profile_column_gets_an_empty_one(album):
    # Migrations run while the old code still serves (docs/deploy.rst): its INSERT names no such column.
    stored = make_picture(album=album)
    quote = connection.ops.quote_name  # `sensitive` is a reserved word in MariaDB
    columns = [quote(f.column) for f in Picture._meta.concrete_fields if f.name not in ("id", "colour_profile")]
    values = {quote("media_key"): "%s", quote("content_hash"): "%s"}
    table = quote(Picture._meta.db_table)
    # Our own model's table and column names only; the values are parameters.
    sql = f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(values.get(c, c) for c in columns)} FROM {table} WHERE id = %s"  # noqa: E501, S608
    with connection.cursor() as cursor:
        cursor.execute(sql, ["3_old_code", "f" * 64, stored.pk])
    assert Picture.objects.get(media_key="3_old_code").colour_profile == ""
