"""Account workflows: rate limits, sign-up without revealing who has an account, deleting an account."""

from __future__ import annotations

import hashlib
import math
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.core import signing
from django.db import IntegrityError, transaction
from django.db.models import F
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import timezone

from everhash.emails import absolute_url, send_email
from everhash.lib.clientip import client_ip
from pictures.services import delete_album
from users.models import ApiToken, RateLimitCounter, User, canonical_email


@dataclass(frozen=True)
class Limit:
    attempts: int
    seconds: int


# Per client address and per email; from the settings so operators can tune them.
def limits(scope: str) -> dict[str, Limit]:
    return {kind: Limit(*values) for kind, values in settings.EVERHASH_RATE_LIMITS[scope].items()}


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Hit:
    """One counted attempt: `wait` is 0 when allowed, else the seconds until its window ends."""

    wait: int
    key: str


def hit(*, scope: str, kind: str, value: str, limit: Limit) -> Hit:
    """Count one attempt in the current window of (scope, kind, value)."""
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
        return Hit(wait=0, key=key)
    return Hit(wait=max(1, math.ceil((window + 1) * limit.seconds - now)), key=key)


def check_rate_limits(*, scope: str, request: HttpRequest, email: str | None) -> int:
    """Count an attempt by address, then (if the address is within its limit) by email.

    Returns 0 or the seconds to wait. An address over its limit counts nothing against the
    email, so an attacker's refused requests cannot use up the owner's allowance.
    """
    rules = limits(scope)
    wait = hit(scope=scope, kind="address", value=client_ip(request), limit=rules["address"]).wait
    if wait or not email:
        return wait
    return hit(scope=scope, kind="email", value=canonical_email(email), limit=rules["email"]).wait


def check_user_rate_limit(*, scope: str, user: User) -> int:
    """Count an action of a signed-in user (creating an album...). Returns 0 or the seconds to wait."""
    return hit(scope=scope, kind="user", value=str(user.pk), limit=limits(scope)["user"]).wait


# --- Sign-in: the lockout policy (docs/accounts.md, "Rate limits") -------------------------------
#
# Every attempt counts against the client's address. Failed attempts count against the email,
# except from a client that has signed in to that account before: it carries a signed "device"
# cookie and counts against its own counter instead. So an attacker guessing from elsewhere is
# stopped by the email's limit, and cannot keep the owner out of a browser they already use.

DEVICE_COOKIE = "everhash_device"
DEVICE_SALT = "users.sign-in-device"
DEVICE_MAX_AGE = 365 * 24 * 3600


@dataclass(frozen=True)
class SignInAttempt:
    wait: int  # 0: go on and check the password; else refuse without checking it
    refund_key: str | None = None  # the counter a successful sign-in gives its attempt back to


def _device(request: HttpRequest, email: str) -> str | None:
    """The device id of this client if it signed in to `email` before (a signed cookie)."""
    raw = request.COOKIES.get(DEVICE_COOKIE)
    if not raw:
        return None
    try:
        data = signing.loads(raw, salt=DEVICE_SALT, max_age=DEVICE_MAX_AGE)
    except signing.BadSignature:
        return None
    if not isinstance(data, dict) or data.get("e") != _digest(canonical_email(email)):
        return None
    return str(data.get("d", "")) or None


def begin_sign_in(*, request: HttpRequest, email: str) -> SignInAttempt:
    """Count a sign-in attempt before any password is looked at.

    When `wait` is set the caller answers 429 and must not authenticate: the answer is then the
    same whether the password was right or wrong, and no password hash is computed.
    """
    rules = limits("login")
    by_address = hit(scope="login", kind="address", value=client_ip(request), limit=rules["address"])
    if by_address.wait:
        return SignInAttempt(wait=by_address.wait)
    device = _device(request, email)
    kind, value = ("device", device) if device else ("email", canonical_email(email))
    by_account = hit(scope="login", kind=kind, value=value, limit=rules["email"])
    return SignInAttempt(wait=by_account.wait, refund_key=by_account.key)


def sign_in_succeeded(*, attempt: SignInAttempt, email: str, response: HttpResponse) -> None:
    """A right password: its attempt does not count against the account; this client is remembered."""
    if attempt.refund_key:
        RateLimitCounter.objects.filter(key=attempt.refund_key, count__gt=0).update(count=F("count") - 1)
    trust_device(response=response, email=email)


def trust_device(*, response: HttpResponse, email: str) -> None:
    """Remember this client as one that proved it knows the account's password (or inbox)."""
    value = signing.dumps({"e": _digest(canonical_email(email)), "d": secrets.token_urlsafe(16)}, salt=DEVICE_SALT)
    response.set_cookie(
        DEVICE_COOKIE,
        value,
        max_age=DEVICE_MAX_AGE,
        secure=settings.SESSION_COOKIE_SECURE,
        httponly=True,
        samesite="Lax",
    )


def wait_message(seconds: int, *, what: str = "attempts") -> str:
    minutes = max(1, math.ceil(seconds / 60))
    return f"Too many {what}. Please wait {minutes} minute{'s' if minutes != 1 else ''} and try again."


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


def password_changed(*, user: User, through_inbox: bool) -> None:
    """After a password change or reset: the API tokens go (the sessions go by Django's session hash).

    A reset proves the inbox. If the account is a sign-up nobody ever activated (never signed in),
    the reset activates it, with the inbox owner's password: someone who signed up first with
    another person's address cannot keep them out. An account staff disabled stays disabled.
    """
    ApiToken.objects.filter(user=user).delete()
    if through_inbox:
        User.objects.filter(pk=user.pk, is_active=False, last_login__isnull=True).update(is_active=True)


def delete_account(*, user: User) -> None:
    """Delete the account with its albums (their pictures and files too) and its tokens."""
    for album in list(user.albums.all()):
        delete_album(album=album)
    user.delete()
