"""The template filters every page shares (everhash/templatetags/everhash.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.template import Context, Template
from django.utils import timezone


def render(source: str, **context) -> str:
    return Template("{% load everhash %}" + source).render(Context(context))


def test_a_moment_reads_ago_with_the_exact_local_time_on_hover_and_its_machine_time(settings):
    settings.TIME_ZONE = "Europe/Paris"
    # Three and a half minutes back, then a fixed fraction of a second: setting the microseconds
    # moves the moment by under a second either way, so it still reads "3 minutes ago".
    moment = (timezone.now().astimezone(UTC) - timedelta(minutes=3, seconds=30)).replace(microsecond=250000)
    html = render("{{ moment|relative_time }}", moment=moment)
    local = timezone.localtime(moment, timezone.get_current_timezone())
    assert html == (
        f'<time data-relative datetime="{local.isoformat()}"'
        f' title="{local.day} {local:%b %Y, %H:%M} {local.tzname()}">3\xa0minutes ago</time>'
    )


def test_no_moment_renders_nothing():
    assert render("{{ moment|relative_time }}", moment=None) == ""


def test_text_around_a_moment_is_escaped_and_the_moment_is_not():
    html = render("{{ label }} {{ moment|relative_time }}", label="<b>", moment=datetime(2026, 1, 2, 3, 4, tzinfo=UTC))
    assert html.startswith("&lt;b&gt; <time data-relative datetime=") and html.endswith("</time>")
