"""Template filters shared by every page: `{% load everhash %}`."""

from __future__ import annotations

from datetime import datetime

from django import template
from django.contrib.humanize.templatetags.humanize import naturaltime
from django.utils.dateformat import format as format_date
from django.utils.html import format_html
from django.utils.safestring import SafeString

register = template.Library()


@register.filter(expects_localtime=True)
def relative_time(value: datetime | None) -> SafeString | str:
    """A moment as every page shows it: "3 minutes ago", the exact time on hover, and the
    machine-readable time static/js/times.js keeps "ago" true on a page left open."""
    if not value:
        return ""
    return format_html(
        '<time data-relative datetime="{}" title="{}">{}</time>',
        format_date(value, "c"),
        format_date(value, "j M Y, H:i e"),
        naturaltime(value),
    )
