"""Shared test fixtures: the three standard users, builders, isolated media storage."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest
from django.utils import timezone

from albums.models import Album
from pictures.models import Picture, Source
from users.models import User

_counter = itertools.count(1)


@pytest.fixture(autouse=True)
def _isolated_media(settings, tmp_path):
    """Every test writes media to its own folder and sends email to Django's outbox."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    }
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


@pytest.fixture
def owner(db) -> User:
    return User.objects.create_user("owner@example.com", "owner-password", name="Olive Owner")


@pytest.fixture
def other(db) -> User:
    """Another signed-up user who owns nothing here."""
    return User.objects.create_user("other@example.com", "other-password", name="Otto Other")


@pytest.fixture
def staff(db) -> User:
    return User.objects.create_user("staff@example.com", "staff-password", is_staff=True, is_superuser=True)


def make_album(*, owner: User, hashtag: str = "sunset", **kwargs) -> Album:
    return Album.objects.create(owner=owner, hashtag=hashtag, **kwargs)


def make_picture(*, album: Album, **kwargs) -> Picture:
    n = next(_counter)
    defaults = {
        "source": Source.SAMPLE,
        "post_id": str(1_800_000_000_000_000_000 + n),
        "media_key": f"3_{n}",
        "permalink": f"https://x.com/someone/status/{1_800_000_000_000_000_000 + n}",
        "author_handle": "someone",
        "author_name": "Some One",
        "like_count": n,
        "posted_at": datetime(2026, 11, 1, 12, 0, tzinfo=UTC),
        "added_at": timezone.now(),
        "width": 800,
        "height": 600,
        "content_hash": f"{n:064x}",
        "histogram": b"",
        "structure_hash": "",
        "original_key": f"o/{n:064x}.jpg",
    }
    defaults.update(kwargs)
    return Picture.objects.create(album=album, **defaults)


@pytest.fixture
def album(owner) -> Album:
    return make_album(owner=owner, hashtag="sunset", title="Sunsets")


@pytest.fixture(scope="session")
def tls_ca(tmp_path_factory):
    """One throwaway certificate authority for every loopback HTTPS server of a test run.

    `tls_ca.ca_path` is the PEM to trust (EVERHASH_CA_BUNDLE, twython's `verify`);
    `tls_ca.server_context()` is an ssl.SSLContext for a server on 127.0.0.1/localhost.
    """
    import ssl

    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost", "127.0.0.2")
    folder = tmp_path_factory.mktemp("tls")
    ca_path = folder / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))

    class TLS:
        pass

    tls = TLS()
    tls.ca = ca
    tls.ca_path = str(ca_path)

    def server_context() -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert.configure_cert(context)
        return context

    tls.server_context = server_context
    return tls


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SMTPInbox:
    """Messages delivered to the loopback SMTP server, parsed."""

    def __init__(self) -> None:
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802  (aiosmtpd's hook name)
        from email import message_from_bytes, policy

        message = message_from_bytes(envelope.original_content, policy=policy.default)
        message.envelope_to = list(envelope.rcpt_tos)
        self.messages.append(message)
        return "250 OK"


@pytest.fixture
def smtp_server(settings):
    """A real SMTP server on 127.0.0.1; Django's SMTP backend delivers to it."""
    from aiosmtpd.controller import Controller

    inbox = SMTPInbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = controller.port
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 5
    inbox.controller = controller
    yield inbox
    controller.stop()


@pytest.fixture
def smtp_down(settings):
    """SMTP configured at a loopback port where nothing listens."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = free_port()
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_TIMEOUT = 2
