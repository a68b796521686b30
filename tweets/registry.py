"""Which sources this deployment has, and how to build one: the one module that knows every source
(tweets/sources.py is the interface they implement, and imports none of them).

A source is known by its key: `x`, `sample`, `mastodon:<instance>`, `bluesky:<service>`. Every
source is listed with a reason when it cannot work (no X token, no Bluesky account), so owners'
pages can say what feeds an album and why not the others. X without a token gives way to the
bundled sample source, as it always did: `make run` works offline and needs no credentials.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

from tweets.mastodon_api import MastodonSource
from tweets.sample import SAMPLE_HASHTAGS, SampleSource
from tweets.sources import Source, SourceError, source_label
from tweets.x_api import XSource

logger = logging.getLogger("everhash.fetch")

X_UNAVAILABLE = "no token configured (EVERHASH_X_BEARER_TOKEN); X's API is paid per post read"
BLUESKY_UNAVAILABLE = "no account configured (EVERHASH_BLUESKY_HANDLE and EVERHASH_BLUESKY_APP_PASSWORD)"
SAMPLE_ONLY = "sample posts exist only for the demo albums ({})".format(", ".join(f"#{tag}" for tag in SAMPLE_HASHTAGS))


@dataclass(frozen=True)
class SourceOption:
    key: str
    label: str  # what owners read: "X", "mastodon.social", "bsky.social"
    available: bool
    reason: str = ""  # why it is not available, in plain words


def _option(key: str, unavailable: str = "") -> SourceOption:
    """A source, available unless there is a reason it cannot work."""
    return SourceOption(key, source_label(key), not unavailable, unavailable)


def _host(url: str) -> str:
    return urlsplit(url).netloc.lower()


def _bluesky_configured() -> bool:
    return bool(settings.EVERHASH_BLUESKY_HANDLE and settings.EVERHASH_BLUESKY_APP_PASSWORD)


def source_options(*, hashtag: str | None = None) -> list[SourceOption]:
    """Every source of this deployment, those that cannot work included, in the order albums fetch them;
    for one album's `hashtag`, those that would search it (SampleSource.serves: the demo hashtags).

    Without an X token the sample source stands in for X (the demo albums and offline use).
    """
    if settings.EVERHASH_X_BEARER_TOKEN:
        options = [_option("x")]
    elif hashtag is None or SampleSource().serves(hashtag):
        options = [_option("x", X_UNAVAILABLE), _option("sample")]
    else:
        options = [_option("x", X_UNAVAILABLE), _option("sample", SAMPLE_ONLY)]
    options += [_option(f"mastodon:{_host(url)}") for url in settings.EVERHASH_MASTODON_INSTANCES]
    bluesky = _option(
        f"bluesky:{_host(settings.EVERHASH_BLUESKY_API_URL)}", "" if _bluesky_configured() else BLUESKY_UNAVAILABLE
    )
    return [*options, bluesky]


def build_source(key: str) -> Source:
    """The Source for a key of `source_options()`. SourceError for a key this deployment lacks."""
    if key == "x":
        return XSource.from_settings()
    if key == "sample":
        return SampleSource()
    network, _, host = key.partition(":")
    if network == "mastodon":
        for url in settings.EVERHASH_MASTODON_INSTANCES:
            if _host(url) == host:
                return MastodonSource.from_settings(url)
        raise SourceError(f"{host} is not in EVERHASH_MASTODON_INSTANCES.")
    if network == "bluesky":
        if not _bluesky_configured() or _host(settings.EVERHASH_BLUESKY_API_URL) != host:
            raise SourceError(f"Bluesky at {host}: {BLUESKY_UNAVAILABLE}.")
        # Not a cycle dodged: the atproto SDK takes seconds to import (its generated models), so
        # only a deployment that configured Bluesky, and only when it fetches, pays for it.
        from tweets.bluesky_api import BlueskySource

        return BlueskySource.from_settings()
    raise SourceError(f"Unknown source {key!r}.")


def run_sources() -> list[Source]:
    """The sources a fetch run asks, built once per run (so a rate limit seen for one album holds
    for the next). A source that cannot be built is logged and left out."""
    sources = []
    for option in source_options():
        if not option.available:
            continue
        try:
            sources.append(build_source(option.key))
        except SourceError as exc:
            logger.error("Source %s is not usable: %s", option.key, exc)
    return sources
