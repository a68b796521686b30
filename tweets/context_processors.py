"""What pages may say about where pictures come from (tweets/registry.py), worked out only when a
template asks: the add-album confirmation, the album page, the sources page. On a page of one
hashtag (its URL's `hashtag`), the sources that would search that hashtag."""

from __future__ import annotations

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from tweets.registry import source_options


def sources(request: HttpRequest) -> dict:
    match = request.resolver_match
    hashtag = match.kwargs.get("hashtag") if match is not None else None
    options = SimpleLazyObject(lambda: source_options(hashtag=hashtag))
    return {
        "available_sources": SimpleLazyObject(lambda: [option for option in options if option.available]),
        "unavailable_sources": SimpleLazyObject(lambda: [option for option in options if not option.available]),
    }
