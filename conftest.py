"""Shared test fixtures: the three standard users, builders, isolated media storage."""

from __future__ import annotations

import itertools
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.db.models import F
from django.utils import timezone

from albums.models import Album
from pictures.models import Picture, Source
from users.models import User

_counter = itertools.count(1)


@pytest.fixture(autouse=True)
def _isolated_media(settings, tmp_path):
    """Every test writes media to its own folder and sends email to Django's outbox."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.VAR_DIR = tmp_path  # the fetch_tweets lock file, among others
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    }
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    from django.core.cache import cache

    cache.clear()  # rendered pages, charts and API pages from another test


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
    picture = Picture.objects.create(album=album, **defaults)
    # Like ingest_photo, move the album's version on (pages and API caches follow it); the
    # collage is left alone so tests of staleness start from a clean state.
    Album.objects.filter(pk=album.pk).update(pictures_version=F("pictures_version") + 1)
    return picture


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


SAMPLE_PHOTOS = Path(__file__).resolve().parent / "tweets" / "sample_data" / "photos"
COLOUR_PHOTOS = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "hubble_deep_field.jpg", "retina.jpg"]


def photo_bytes(name: str, *, fmt: str = "JPEG", scale: float = 1.0, quality: int = 90, mirror: bool = False) -> bytes:
    """Real image bytes made from one of the bundled sample photos."""
    import io

    from PIL import Image, ImageOps

    with Image.open(SAMPLE_PHOTOS / name) as source:
        image = source.convert("RGB")
    if scale != 1.0:
        image = image.resize((max(1, int(image.width * scale)), max(1, int(image.height * scale))))
    if mirror:
        image = ImageOps.mirror(image)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    return buffer.getvalue()


@pytest.fixture
def fake_x(tls_ca):
    """The loopback HTTPS fake X API (everhash/testing/fake_x_api.py)."""
    from everhash.testing.fake_x_api import FakeXAPI

    with FakeXAPI(tls_ca.server_context()) as fake:
        yield fake


def process_environment(tmp_path: Path, *, tls_ca, fake_x) -> dict[str, str]:
    """The environment of a manage.py (or worker) subprocess as cron would run it: its own database
    and media under tmp_path (or, on the MariaDB run, the inherited DB_* database), the fake X API,
    emails written to files."""
    from everhash.testing.fake_x_api import DEFAULT_BEARER

    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "everhash.settings",
        "EVERHASH_VAR_DIR": str(tmp_path),
        "EVERHASH_SQLITE_PATH": str(tmp_path / "db.sqlite3"),
        "MEDIA_ROOT": str(tmp_path / "media"),
        "EVERHASH_X_API_URL": fake_x.url,
        "EVERHASH_X_BEARER_TOKEN": DEFAULT_BEARER,
        "EVERHASH_CA_BUNDLE": tls_ca.ca_path,
        "EVERHASH_MEDIA_HOSTS": "127.0.0.1",
        "EVERHASH_ALLOW_PRIVATE_ADDRESSES": "127.0.0.1",
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(tmp_path / "mail"),
    }


@pytest.fixture
def media_server(tls_ca):
    """A loopback HTTPS media server that can misbehave (everhash/tests/media_server.py)."""
    from everhash.tests.media_server import MediaServer

    with MediaServer(tls_ca.server_context()) as server:
        yield server


@pytest.fixture
def x_settings(settings, tls_ca, fake_x, monkeypatch):
    """Point everhash at the fake X API and loopback media, the way an operator would."""
    from everhash.testing.fake_x_api import DEFAULT_BEARER
    from tweets.x_api import XSource

    settings.EVERHASH_X_BEARER_TOKEN = DEFAULT_BEARER
    settings.EVERHASH_X_API_URL = fake_x.url
    settings.EVERHASH_CA_BUNDLE = tls_ca.ca_path
    settings.EVERHASH_MEDIA_HOSTS = ["127.0.0.1", "127.0.0.2"]  # 127.0.0.2 is still refused by the address guard
    settings.EVERHASH_ALLOW_PRIVATE_ADDRESSES = ["127.0.0.1"]
    sleeps: list[float] = []
    monkeypatch.setitem(XSource.__init__.__kwdefaults__, "sleep", sleeps.append)
    return sleeps


CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        message = f"Chromium is not installed at {CHROMIUM} (apt-get install chromium): browser tests not run"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    # Playwright's sync API keeps an event loop in this thread; the ORM calls in
    # these tests are plain synchronous code all the same.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def csp_violations() -> list[str]:
    """What the browser reported as blocked by the Content-Security-Policy in this test."""
    return []


@pytest.fixture(autouse=True)
def _no_csp_violations(request, csp_violations):
    """Every browser test also proves our pages run under the CSP (everhash/middleware.py)."""
    if "browser" not in request.fixturenames:
        yield
        return
    browser = request.getfixturevalue("browser")
    new_context = browser.new_context

    def watched_context(*args, **kwargs):
        context = new_context(*args, **kwargs)

        def on_console(message) -> None:
            if "Content Security Policy" in message.text:
                csp_violations.append(message.text)

        context.on("console", on_console)
        return context

    browser.new_context = watched_context
    try:
        yield
    finally:
        browser.new_context = new_context
    assert not csp_violations, csp_violations


SCREENSHOTS = Path(__file__).resolve().parent / "docs" / "screenshots"


@pytest.fixture
def shots(tmp_path):
    folder = SCREENSHOTS if os.environ.get("EVERHASH_SCREENSHOTS") else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    return folder
