"""Who is calling the REST API: personal API tokens, and how often each caller may call.

DRF imports this module while it defines its own APIView (through the DEFAULT_AUTHENTICATION_CLASSES
and DEFAULT_THROTTLE_CLASSES settings), so it imports nothing from rest_framework.views or
generics, and our models only inside functions.
"""

from __future__ import annotations

import time
from datetime import timedelta

from django.core.cache import cache as default_cache
from django.db.models import Q
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

from everhash.lib.clientip import client_ip

# last_used_at is written at most this often per token, so a busy script does not write on every call.
LAST_USED_RESOLUTION = timedelta(minutes=1)
KEYWORDS = (b"token", b"bearer")


class ApiTokenAuthentication(BaseAuthentication):
    """`Authorization: Token <token>` or `Authorization: Bearer <token>`, tokens made on /accounts/tokens/."""

    keyword = "Bearer"

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() not in KEYWORDS:
            return None  # not ours: session authentication may still apply
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Invalid Authorization header: use 'Bearer <token>'.")
        try:
            key = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid token.") from None
        return self.authenticate_credentials(key)

    def authenticate_credentials(self, key: str):
        from users.models import ApiToken, hash_token

        try:
            token = ApiToken.objects.select_related("user").get(key_hash=hash_token(key))
        except ApiToken.DoesNotExist:
            raise exceptions.AuthenticationFailed("Invalid token: it does not exist or was revoked.") from None
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("This token's account is disabled.")
        self._touch(token)
        return token.user, token

    @staticmethod
    def _touch(token) -> None:
        """Record the use, at most once a minute (a conditional update: concurrent calls write once)."""
        from users.models import ApiToken

        now = timezone.now()
        if token.last_used_at is not None and token.last_used_at > now - LAST_USED_RESOLUTION:
            return
        ApiToken.objects.filter(pk=token.pk).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lte=now - LAST_USED_RESOLUTION)
        ).update(last_used_at=now)
        token.last_used_at = now

    def authenticate_header(self, request) -> str:
        # Makes anonymous callers of protected endpoints get 401 (with this header) rather than 403.
        return f'{self.keyword} realm="api"'


def parse_rate(rate: str) -> tuple[int, int]:
    """ "120/min" -> (120, 60): DRF's format, a count per s(econd), m(inute), h(our) or d(ay)."""
    count, _, period = rate.partition("/")
    return int(count), {"s": 1, "m": 60, "h": 3600, "d": 86400}[period[:1]]


class _FixedWindowThrottle(BaseThrottle):
    """At most N requests per caller per window (second, minute, hour or day), counted in the cache.

    DRF's own throttles keep a list of every request's time in the window and store it back on
    each request: with 600/min that is a 600-item list pickled per call. A counter per window
    is one `incr`, whatever the rate. A burst may straddle two windows (up to twice the rate
    over a minute), which is fine for this purpose. The rate is read per request, not at
    import, so changed settings apply (EVERHASH_API_*_RATE; tests).
    """

    scope = ""
    cache = default_cache
    timer = time.time

    def identity(self, request) -> str | None:
        raise NotImplementedError

    def get_ident(self, request) -> str:
        # DRF's own reads X-Forwarded-For by NUM_PROXIES; ours trusts only EVERHASH_TRUSTED_PROXIES.
        return client_ip(request)

    def allow_request(self, request, view) -> bool:
        rate = api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)
        ident = self.identity(request)
        if not rate or ident is None:
            return True
        limit, duration = parse_rate(rate)
        now = self.timer()
        window = int(now // duration)
        self.retry_after = (window + 1) * duration - now
        key = f"throttle:{self.scope}:{ident}:{window}"
        if self.cache.add(key, 1, duration + 1):
            return True
        try:
            return self.cache.incr(key) <= limit
        except ValueError:  # the window's key expired between add() and incr()
            self.cache.set(key, 1, duration + 1)
            return True

    def wait(self) -> float:
        return max(self.retry_after, 1.0)


class AnonRateThrottle(_FixedWindowThrottle):
    """Anonymous callers, by client address (EVERHASH_API_ANON_RATE)."""

    scope = "anon"

    def identity(self, request) -> str | None:
        return None if request.user and request.user.is_authenticated else self.get_ident(request)


class UserRateThrottle(_FixedWindowThrottle):
    """Signed-in callers (session or token), by user (EVERHASH_API_USER_RATE)."""

    scope = "user"

    def identity(self, request) -> str | None:
        return str(request.user.pk) if request.user and request.user.is_authenticated else None
