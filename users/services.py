"""Account workflows: rate limits, sign-up without revealing who has an account, deleting an account."""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.db import IntegrityError, transaction
from django.db.models import F
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from everhash.emails import absolute_url, send_email
from pictures.services import delete_album
from users.models import RateLimitCounter, User, canonical_email


@dataclass(frozen=True)
class Limit:
    attempts: int
    seconds: int


# Per client address and per email; from the settings so operators can tune them.
def limits(scope: str) -> dict[str, Limit]:
    return {kind: Limit(*values) for kind, values in settings.EVERHASH_RATE_LIMITS[scope].items()}


def client_address(request: HttpRequest) -> str:
    """The client's address (REMOTE_ADDR: set it from the proxy in the web server, see docs/deploy)."""
    return request.META.get("REMOTE_ADDR", "") or "unknown"


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:32]


def hit(*, scope: str, kind: str, value: str, limit: Limit) -> int:
    """Count one attempt. Returns 0 when allowed, else the seconds until the window ends."""
    now = time.time()
    window = int(now // limit.seconds)
    key = f"{scope}:{kind}:{_digest(value)}:{window}"
    try:
        with transaction.atomic():
            counter, created = RateLimitCounter.objects.get_or_create(key=key)
    except IntegrityError:  # created by a concurrent request
        counter, created = RateLimitCounter.objects.get(key=key), False
    if created:
        # Forget windows that ended a day ago or more.
        RateLimitCounter.objects.filter(created__lt=timezone.now() - timedelta(days=1)).delete()
    RateLimitCounter.objects.filter(pk=counter.pk).update(count=F("count") + 1)
    count = RateLimitCounter.objects.values_list("count", flat=True).get(pk=counter.pk)
    if count <= limit.attempts:
        return 0
    return max(1, math.ceil((window + 1) * limit.seconds - now))


def check_rate_limits(*, scope: str, request: HttpRequest, email: str | None) -> int:
    """Count an attempt by address and by email. Returns 0 or the seconds to wait."""
    rules = limits(scope)
    wait = hit(scope=scope, kind="address", value=client_address(request), limit=rules["address"])
    if email:
        wait = max(wait, hit(scope=scope, kind="email", value=canonical_email(email), limit=rules["email"]))
    return wait


def wait_message(seconds: int) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    return f"Too many attempts. Please wait {minutes} minute{'s' if minutes != 1 else ''} and try again."


def register(*, email: str, password: str, send_activation) -> User | None:
    """Create an inactive account, or tell the existing owner of the address someone tried.

    The caller answers the same way in both cases, so the page reveals nothing.
    """
    email = canonical_email(email)
    existing = User.objects.filter(email=email).first()
    if existing is not None:
        make_password(password)  # the same work as the other branch: no timing difference
        send_email(
            to=[existing.email],
            template="account_exists",
            context={"reset_url": absolute_url(reverse("password_reset")), "login_url": absolute_url(reverse("login"))},
        )
        return None
    try:
        with transaction.atomic():
            user = User.objects.create_user(email, password, is_active=False)
    except IntegrityError:  # signed up twice at once: the first one wins
        return None
    send_activation(user)
    return user


def delete_account(*, user: User) -> None:
    """Delete the account with its albums (their pictures and files too) and its tokens."""
    for album in list(user.albums.all()):
        delete_album(album=album)
    user.delete()
