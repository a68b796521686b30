"""The X API v2 adapter: the only module that knows X's payloads (and imports twython).

`parse_search_response` turns a v2 recent-search payload into a `Page`; it is
shared by the X source and the bundled sample source, whose recorded pages have
the same shape.
"""

from __future__ import annotations

from datetime import datetime

from tweets.sources import Page, Photo, Post, RateLimit, SourceError

PERMALINK = "https://x.com/{handle}/status/{id}"


def _original_url(url: str) -> str:
    """The original-size variant of a pbs.twimg.com photo URL (`?name=orig`)."""
    base = url.split("?", 1)[0]
    return f"{base}?name=orig"


def _parse_time(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        raise SourceError(f"The API sent a post with an unreadable date: {value!r}.") from None


def parse_search_response(payload: object, *, rate_limit: RateLimit | None = None) -> Page:
    """A Page from a v2 search payload: photos only, joined with their media and authors.

    Posts without photos, videos and GIF previews are dropped; retweets are
    dropped (the query excludes them; this guards against a retweet slipping
    through and being credited to the retweeter). Posts whose author or media
    are missing from `includes` are skipped rather than failing the page.
    """
    if not isinstance(payload, dict):
        raise SourceError("The API sent something that is not a JSON object.")
    meta = payload.get("meta") or {}
    includes = payload.get("includes") or {}
    media_by_key = {m.get("media_key"): m for m in includes.get("media") or [] if isinstance(m, dict)}
    users_by_id = {u.get("id"): u for u in includes.get("users") or [] if isinstance(u, dict)}

    posts: list[Post] = []
    for item in payload.get("data") or []:
        if not isinstance(item, dict) or "id" not in item:
            continue
        if any(ref.get("type") == "retweeted" for ref in item.get("referenced_tweets") or []):
            continue
        author = users_by_id.get(item.get("author_id"))
        if not author or not author.get("username"):
            continue
        photos = []
        for key in (item.get("attachments") or {}).get("media_keys") or []:
            media = media_by_key.get(key)
            if not media or media.get("type") != "photo" or not media.get("url"):
                continue
            photos.append(
                Photo(
                    media_key=str(key),
                    url=_original_url(media["url"]),
                    width=int(media.get("width") or 0),
                    height=int(media.get("height") or 0),
                    alt_text=media.get("alt_text") or "",
                )
            )
        if not photos:
            continue
        post_id = str(item["id"])
        handle = author["username"]
        posts.append(
            Post(
                id=post_id,
                permalink=PERMALINK.format(handle=handle, id=post_id),
                author_handle=handle,
                author_name=author.get("name") or handle,
                text=item.get("text") or "",
                like_count=int((item.get("public_metrics") or {}).get("like_count") or 0),
                posted_at=_parse_time(item.get("created_at", "")),
                sensitive=bool(item.get("possibly_sensitive")),
                photos=tuple(photos),
            )
        )
    newest = meta.get("newest_id")
    return Page(
        posts=posts,
        newest_id=str(newest) if newest else None,
        next_token=meta.get("next_token") or None,
        rate_limit=rate_limit or RateLimit(),
    )
