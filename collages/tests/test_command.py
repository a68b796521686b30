from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from albums.models import Album
from collages.models import Collage
from everhash.testing.builders import PALETTE, make_album, make_coloured_picture, make_coloured_pictures
from everhash.testing.fixtures import fail_collage_encoding


def run(*args: str) -> tuple[str, str]:
    stdout, stderr = StringIO(), StringIO()
    call_command("build_collages", *args, stdout=stdout, stderr=stderr)
    return stdout.getvalue(), stderr.getvalue()


@pytest.fixture
def stale(album) -> Album:
    make_coloured_pictures(album, 3)
    Album.objects.filter(pk=album.pk).update(collage_stale=True)
    return album


@pytest.fixture
def quiet(owner) -> Album:
    """An album with pictures whose collage is not stale (and was never built)."""
    album = make_album(owner=owner, hashtag="dusk")
    make_coloured_picture(album, PALETTE[7])
    return album


def test_it_builds_only_the_stale_albums_with_a_line_each(stale, quiet):
    out, err = run()

    assert out.splitlines() == ["#sunset: built from 3 pictures", "1 built"]
    assert err == ""
    assert Collage.objects.get(album=stale).picture_count == 3
    assert not Collage.objects.filter(album=quiet).exists()
    stale.refresh_from_db()
    assert stale.collage_stale is False


def test_a_second_run_has_nothing_to_do(stale):
    run()

    out, _ = run()

    assert out.splitlines() == ["No stale collages."]


def test_album_builds_the_albums_named_stale_or_not(stale, quiet, owner):
    make_album(owner=owner, hashtag="night", collage_stale=True)

    out, _ = run("--album", "#Dusk", "--album", "sunset")

    assert out.splitlines() == ["#dusk: built from 1 picture", "#sunset: built from 3 pictures", "2 built"]
    assert Collage.objects.count() == 2


def test_an_unchanged_album_is_not_rebuilt_without_force(stale):
    with time_machine.travel(timezone.now() - timedelta(days=1), tick=False):
        run()
    built_at = Collage.objects.get(album=stale).built_at

    out, _ = run("--album", "sunset")

    assert out.splitlines() == ["#sunset: unchanged (3 pictures)", "1 unchanged"]
    assert Collage.objects.get(album=stale).built_at == built_at

    out, _ = run("--album", "sunset", "--force")

    assert out.splitlines() == ["#sunset: built from 3 pictures", "1 built"]
    assert Collage.objects.get(album=stale).built_at > built_at


def test_force_without_album_rebuilds_only_stale_albums(stale, quiet):
    out, _ = run("--force")

    assert out.splitlines() == ["#sunset: built from 3 pictures", "1 built"]
    assert not Collage.objects.filter(album=quiet).exists()


def test_an_album_without_pictures_is_reported(owner):
    make_album(owner=owner, hashtag="empty", collage_stale=True)

    out, _ = run()

    assert out.splitlines() == ["#empty: no picture to show; no collage", "1 empty"]


def test_verbosity_zero_prints_nothing_and_two_prints_the_keys(stale):
    out, _ = run("--verbosity", "0")
    assert out == ""

    out, _ = run("--album", "sunset", "--verbosity", "2")
    collage = Collage.objects.get(album=stale)
    assert out.splitlines()[0] == f"#sunset: unchanged (3 pictures) [{collage.image_key}, {collage.square_key}]"


def test_an_unknown_or_malformed_album_is_an_error(stale):
    with pytest.raises(CommandError, match="There is no album for #nothere"):
        run("--album", "nothere")
    with pytest.raises(CommandError, match="one word"):
        run("--album", "two words")
    assert not Collage.objects.exists()


def test_a_failure_is_reported_and_does_not_stop_the_others(stale, quiet, monkeypatch):
    Album.objects.filter(pk=quiet.pk).update(collage_stale=True)
    fail_collage_encoding(monkeypatch, pictures=3)
    stdout, stderr = StringIO(), StringIO()

    with pytest.raises(CommandError, match="1 collage\\(s\\) failed"):
        call_command("build_collages", stdout=stdout, stderr=stderr)

    assert stderr.getvalue().splitlines() == ["#sunset: failed: OSError: disk full"]
    assert stdout.getvalue().splitlines() == ["#dusk: built from 1 picture", "1 built, 1 failed"]
    stale.refresh_from_db()
    assert stale.collage_stale is True
