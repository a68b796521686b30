from __future__ import annotations

import hashlib
import secrets

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone


def canonical_email(email: str) -> str:
    """Emails are unique case-insensitively: we store them case-folded."""
    return (email or "").strip().lower()


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def _create_user(self, email: str, password: str | None, **extra: object) -> User:
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=canonical_email(email), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra: object) -> User:
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra: object) -> User:
        extra["is_staff"] = True
        extra["is_superuser"] = True
        return self._create_user(email, password, **extra)

    def get_by_natural_key(self, email: str) -> User:
        return self.get(email=canonical_email(email))


class User(AbstractBaseUser, PermissionsMixin):
    """A person with an account. They log in with their email address."""

    email = models.EmailField("email address", max_length=254, unique=True)
    name = models.CharField(max_length=150, blank=True)
    is_staff = models.BooleanField(default=False, help_text="Can log into the admin and moderate.")
    is_active = models.BooleanField(default=True)
    created = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        constraints = [
            # With `unique=True` above this makes the uniqueness case-insensitive
            # on every database (SQLite compares case-sensitively).
            models.CheckConstraint(condition=models.Q(email=Lower("email")), name="users_user_email_lowercase"),
        ]

    def __str__(self) -> str:
        return self.email

    def clean(self) -> None:
        super().clean()
        self.email = canonical_email(self.email)

    def get_full_name(self) -> str:
        return self.name or self.email

    def get_short_name(self) -> str:
        return self.name or self.email.split("@")[0]


def hash_token(key: str) -> str:
    """The stored form of an API token: its SHA-256 (the token itself is never stored)."""
    return hashlib.sha256(key.encode()).hexdigest()


class ApiTokenManager(models.Manager["ApiToken"]):
    def issue(self, *, user: User, name: str) -> tuple[ApiToken, str]:
        """Create a token for `user`. Returns the row and the token, which is shown once and never again."""
        key = ApiToken.KEY_PREFIX + secrets.token_urlsafe(32)  # 256 random bits
        token = self.create(user=user, name=name, key_hash=hash_token(key), prefix=key[: ApiToken.PREFIX_LENGTH])
        return token, key


class ApiToken(models.Model):
    """A personal API token: `Authorization: Bearer <token>` acts as its user."""

    KEY_PREFIX = "eh_"
    # What the tokens page shows to tell tokens apart: "eh_" and 5 random characters (30 bits).
    PREFIX_LENGTH = 8

    user = models.ForeignKey(User, models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, help_text="What the token is for, e.g. 'export script'.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False, help_text="SHA-256 of the token.")
    prefix = models.CharField(max_length=16, editable=False)
    created = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenManager()

    class Meta:
        ordering = ["-created", "-id"]
        # The tokens page lists a user's tokens: the user FK's own index serves it.
        # Authentication looks a token up by key_hash: its unique constraint's index serves it.

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class RateLimitCounter(models.Model):
    """Attempts counted per key and fixed time window (login, sign-up, password reset).

    In the database, so every web worker shares the counts. Keys carry the
    window's number and a hash of the email or address, never the address itself.
    """

    key = models.CharField(max_length=200, unique=True)
    count = models.PositiveIntegerField(default=0)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            # The sweep of expired windows.
            models.Index(fields=["created"], name="ratelimit_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.key}: {self.count}"
