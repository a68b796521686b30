"""The bundled sample album through the real pipeline: what `make run` shows a newcomer."""

from __future__ import annotations

from io import StringIO

from django.core.management import call_command

from albums.models import Album, Milestone
from pictures.models import Picture


def run(command: str, *args: str) -> str:
    out = StringIO()
    call_command(command, *args, stdout=out)
    return out.getvalue()


def test_the_sample_albums_fill_up_send_the_100_milestone_and_a_rerun_adds_nothing(staff, mailoutbox, settings):
    settings.EVERHASH_X_BEARER_TOKEN = ""
    assert "Created the sample album #everhashdemo" in run("add_sample_albums")
    output = run("fetch_tweets")
    assert "#everhashdemo: ok, 114 added, 10 duplicates, 0 rejected" in output
    assert "#catsofeverhash: ok, 12 added, 1 duplicates, 0 rejected" in output
    demo = Album.objects.get(hashtag="everhashdemo")
    assert demo.owner == staff
    assert demo.pictures.visible().count() == 113  # one post is flagged sensitive: held for review
    assert demo.pictures.filter(status=Picture.Status.PENDING).count() == 1
    assert Milestone.objects.get(album=demo).threshold == 100
    assert [m.subject for m in mailoutbox] == ["The everhash demo album reached 100 pictures"]

    assert "0 added" in run("fetch_tweets", "--album", "everhashdemo", "--album", "catsofeverhash")
    assert Picture.objects.count() == 126
    assert len(mailoutbox) == 1
    assert "Created" not in run("add_sample_albums")
