"""The Content-Security-Policy header, on every response.

Scripts run only from our own static files (no inline script, no eval), so an
injected <script> in a caption cannot run even if escaping ever failed. Styles
allow inline attributes because Django's admin and the API docs use them; our
own templates do not. Images may also come from the media storage's origin (S3
or the CDN domain), which is read from the storage itself. No other site may frame a
page (`frame-ancestors 'none'`), except the origins a view names on its response
(`response.frame_ancestors`: an album's wall, for the sites its owner listed).
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from django.conf import settings
from django.core.files.storage import default_storage, storages


def media_origin() -> str | None:
    """The origin media URLs point at, when it is not this site ('self')."""
    parts = urlsplit(default_storage.url("csp/probe.jpg"))
    if parts.scheme and parts.netloc:
        return f"{parts.scheme}://{parts.netloc}"
    return None


def build_policy(*, frame_ancestors: Sequence[str] = ()) -> str:
    """The policy; `frame_ancestors` are the origins that may frame the response (none by default)."""
    images = ["'self'", "data:", "blob:"]
    origin = media_origin()
    if origin:
        images.append(origin)
    directives = {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": images,
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": list(frame_ancestors) or ["'none'"],
    }
    if not settings.DEBUG and getattr(settings, "SECURE_SSL_REDIRECT", False):
        directives["upgrade-insecure-requests"] = []
    return "; ".join(" ".join([name, *values]) for name, values in directives.items())


class ContentSecurityPolicyMiddleware:
    header = "Content-Security-Policy"

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        self._policy: tuple[object, str] | None = None

    def policy(self) -> str:
        # Built once per storage instance (a settings change, as in tests, makes a new one).
        storage = storages["default"]
        if self._policy is None or self._policy[0] is not storage:
            self._policy = (storage, build_policy())
        return self._policy[1]

    def __call__(self, request):
        response = self.get_response(request)
        if self.header not in response:
            # A view may let named origins frame its response (an album's wall, for its owner's sites).
            ancestors = getattr(response, "frame_ancestors", None)
            response[self.header] = build_policy(frame_ancestors=ancestors) if ancestors else self.policy()
        return response
