"""What pages may say about where pictures come from (tweets/registry.py), worked out only when a
template asks: the add-album confirmation and the sources page."""

from __future__ import annotations

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from tweets.registry import source_options


def sources(request: HttpRequest) -> dict:
    return {
        "available_sources": SimpleLazyObject(lambda: [option for option in source_options() if option.available]),
        "unavailable_sources": SimpleLazyObject(
            lambda: [option for option in source_options() if not option.available]
        ),
    }
