"""URLs of stored files (originals, renditions, collages): the one place they are built.

`media_url(key)` is the storage's own URL (relative for a local folder: /media/..., absolute and
possibly signed on S3); `absolute_media_urls(origin)` is the fast builder the API uses for a page
of pictures; `everhash.emails.absolute_url` makes a relative one absolute for emails and share tags.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from django.core.files.storage import FileSystemStorage, storages
from django.utils.encoding import filepath_to_uri


def media_url(key: str) -> str:
    """The URL of a stored file, as the storage gives it (it may be relative: /media/...)."""
    return storages["default"].url(key)


_URL_SAFE = re.compile(r"[A-Za-z0-9/._~-]*\Z").match


def absolute_media_urls(origin: str) -> Callable[[str], str]:
    """A function giving the absolute URL of a stored file; `origin` (`scheme://host`) completes
    the relative URLs of a local folder.

    For a local folder it adds the quoted key to the base URL computed once, which is what
    FileSystemStorage.url() returns for our keys without its urljoin(): a page of 50 pictures
    has 250 image URLs. Other storages (S3) build each URL themselves.
    """
    storage = storages["default"]
    if isinstance(storage, FileSystemStorage):
        base = storage.base_url
        prefix = origin + base if base.startswith("/") else base

        def local(key: str) -> str:
            # Our keys (hex digests, names) need no quoting; checking is cheaper than quoting.
            return prefix + (key if _URL_SAFE(key) else filepath_to_uri(key)).lstrip("/")

        return local

    def url(key: str) -> str:
        value = storage.url(key)
        return origin + value if value.startswith("/") else value

    return url
