"""Choosing the source a fetch uses: the one module that knows every source (tweets/sources.py is
the interface they implement, and imports none of them)."""

from __future__ import annotations

from django.conf import settings

from tweets.sample import SampleSource
from tweets.sources import Source
from tweets.x_api import XSource


def get_source() -> Source:
    """X when a bearer token is configured, the bundled sample otherwise."""
    if settings.EVERHASH_X_BEARER_TOKEN:
        return XSource.from_settings()
    return SampleSource()
