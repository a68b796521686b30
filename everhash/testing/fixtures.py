"""The shared pytest fixtures, a plugin registered by the root conftest.py (`pytest_plugins`).

- every test: media in its own folder, email to Django's outbox, an empty cache (`_isolated_media`);
- the standard users and roles: `owner`, `other` (a signed-up stranger), `staff`, the albums
  `album` (public) and `hush` (unlisted), and `call(role, ...)` for requests as each of ROLES;
- helpers for tests to import: `fetch_tweets(...)`, `fail_collage_encoding(...)`, `use_s3(...)`;
- loopback servers: `tls_ca`, `fake_x`, `media_server`, `x_settings`, `fediverse` (two Mastodon
  instances), `fake_bluesky`, `social_settings`, `smtp_server`/`smtp_down`,
  `s3` (moto), `redis_url`, and Chromium (`browser`, with every page checked against the CSP).
"""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime
from pathlib import Path

import pytest
import time_machine

from albums.models import Album
from everhash.testing.builders import make_album, make_user
from everhash.testing.fake_bluesky import FakeBluesky
from everhash.testing.fake_mastodon import FakeMastodon, Fediverse
from everhash.testing.fake_x_api import DEFAULT_BEARER, FakeXAPI
from everhash.testing.media_server import MediaServer
from everhash.testing.processes import REDIS_SERVER, ROOT, LoopbackCA, free_port, process_environment, redis_server
from everhash.testing.s3_server import S3Server
from tweets.mastodon_api import MastodonSource
from users.models import User


def require(program: str, package: str, what: str) -> None:
    """Skip the test when a Debian program is missing; fail it on CI, where `make test` installs it."""
    if not Path(program).exists():
        message = f"{program} is not installed (apt-get install {package}): {what} did not run"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


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
    # Tests never reach mastodon.social or Bluesky: the ones about them configure loopback fakes.
    settings.EVERHASH_MASTODON_INSTANCES = []
    settings.EVERHASH_BLUESKY_HANDLE = ""
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    from django.core.cache import cache

    cache.clear()  # rendered pages, charts and API pages from another test


@pytest.fixture
def still_clock():
    """The clock held at 12:05 UTC for the whole test: rate limits count in fixed windows (of 900 and
    3600 s), so a test that spends its attempts and expects a 429 must not cross a window's end,
    and two limited answers give the same Retry-After."""
    with time_machine.travel(datetime(2026, 11, 21, 12, 5, tzinfo=UTC), tick=False):
        yield


@pytest.fixture
def owner(db) -> User:
    return make_user("owner@example.com", "owner-password", name="Olive Owner")


@pytest.fixture
def other(db) -> User:
    """Another signed-up user who owns nothing here."""
    return make_user("other@example.com", "other-password", name="Otto Other")


@pytest.fixture
def staff(db) -> User:
    return make_user("staff@example.com", "staff-password", is_staff=True, is_superuser=True)


# The roles every view and endpoint is tried as: `call(role, ...)` signs in as the matching user.
ROLES = ("anonymous", "stranger", "owner", "staff")


@pytest.fixture
def call(client, owner, other, staff):
    """call(role, method, path, body=None, **headers): one JSON request as anonymous, stranger
    (`other`), owner or staff, through the test client."""
    users = {"stranger": other, "owner": owner, "staff": staff}

    def request(role: str, method: str, path: str, body: dict | None = None, **headers):
        if role in users:
            client.force_login(users[role])
        elif client.cookies:
            client.logout()
        return getattr(client, method)(path, body, content_type="application/json", **headers)

    return request


@pytest.fixture
def album(owner) -> Album:
    return make_album(owner=owner, hashtag="sunset", title="Sunsets")


@pytest.fixture
def hush(owner) -> Album:
    """An unlisted album: found only with its key (`hush.secret`)."""
    return make_album(owner=owner, hashtag="hush", title="Quiet", visibility=Album.Visibility.UNLISTED)


def fail_collage_encoding(monkeypatch, *, pictures: int) -> None:
    """Make collages/builder.encode fail ("disk full") for collages of that many pictures only."""
    from collages import builder

    real_encode = builder.encode

    def encode(images):
        if len(images) == pictures:
            raise OSError("disk full")
        return real_encode(images)

    monkeypatch.setattr(builder, "encode", encode)


def fetch_tweets(*args: str) -> str:
    """Run the fetch_tweets command in this process; what it wrote, stdout then stderr (as a terminal shows)."""
    from io import StringIO

    from django.core.management import call_command

    out, err = StringIO(), StringIO()
    call_command("fetch_tweets", *args, stdout=out, stderr=err)
    return out.getvalue() + err.getvalue()


@pytest.fixture(scope="session")
def tls_ca(tmp_path_factory):
    """One throwaway certificate authority for every loopback HTTPS server of a test run."""
    return LoopbackCA(tmp_path_factory.mktemp("tls"))


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


@pytest.fixture
def fake_x(tls_ca):
    """The loopback HTTPS fake X API (everhash/testing/fake_x_api.py)."""
    with FakeXAPI(tls_ca.server_context()) as fake:
        yield fake


@pytest.fixture
def process_env(tmp_path, tls_ca, fake_x) -> dict[str, str]:
    """The environment of a manage.py or worker subprocess, as cron would run it (processes.py)."""
    return process_environment(tmp_path, fake_x_url=fake_x.url, ca_path=tls_ca.ca_path, bearer_token=DEFAULT_BEARER)


@pytest.fixture
def media_server(tls_ca):
    """A loopback HTTPS media server that can misbehave (everhash/testing/media_server.py)."""
    with MediaServer(tls_ca.server_context()) as server:
        yield server


@pytest.fixture
def x_settings(settings, tls_ca, fake_x, monkeypatch):
    """Point everhash at the fake X API and loopback media, the way an operator would."""
    from tweets.x_api import XSource

    settings.EVERHASH_X_BEARER_TOKEN = DEFAULT_BEARER
    settings.EVERHASH_X_API_URL = fake_x.url
    settings.EVERHASH_CA_BUNDLE = tls_ca.ca_path
    settings.EVERHASH_MEDIA_HOSTS = ["127.0.0.1", "127.0.0.2"]  # 127.0.0.2 is still refused by the address guard
    settings.EVERHASH_ALLOW_PRIVATE_ADDRESSES = ["127.0.0.1"]
    sleeps: list[float] = []
    monkeypatch.setitem(XSource.__init__.__kwdefaults__, "sleep", sleeps.append)
    return sleeps


@pytest.fixture
def fediverse(tls_ca, monkeypatch):
    """Two loopback Mastodon instances that federate statuses (everhash/testing/fake_mastodon.py).

    The adapter's retry back-off sleeps are recorded, not slept (`world.sleeps`)."""
    world = Fediverse()
    world.sleeps = []
    monkeypatch.setitem(MastodonSource.__init__.__kwdefaults__, "sleep", world.sleeps.append)
    with FakeMastodon(tls_ca.server_context(), world) as first, FakeMastodon(tls_ca.server_context(), world) as second:
        world.instances = (first, second)
        yield world


@pytest.fixture
def fake_bluesky(tls_ca):
    """The loopback Bluesky service and its image CDN (everhash/testing/fake_bluesky.py)."""
    with FakeBluesky(tls_ca.server_context()) as fake:
        yield fake


@pytest.fixture
def social_settings(settings, tls_ca):
    """Trust the loopback CA and let downloads reach 127.0.0.1, the way the X tests do."""
    settings.EVERHASH_CA_BUNDLE = tls_ca.ca_path
    settings.EVERHASH_ALLOW_PRIVATE_ADDRESSES = ["127.0.0.1"]
    settings.EVERHASH_MEDIA_HOSTS = ["pbs.twimg.com"]  # X's allowlist: fediverse media must not need it
    return settings


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
    require(CHROMIUM, "chromium", "the browser tests")
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


SCREENSHOTS = ROOT / "docs" / "screenshots"


@pytest.fixture
def shots(tmp_path):
    folder = SCREENSHOTS if os.environ.get("EVERHASH_SCREENSHOTS") else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def use_s3(settings, server: S3Server, **env: str) -> None:
    """Point default_storage at the server the way everhash/settings.py does from the environment."""
    values = server.django_settings(**env)
    default = values.pop("STORAGES_DEFAULT")
    for name, value in values.items():
        setattr(settings, name, value)
    settings.STORAGES = {**settings.STORAGES, "default": default}  # last: default_storage is rebuilt


@pytest.fixture
def s3(settings):
    """moto's S3 on 127.0.0.1 with a fresh bucket; default_storage is S3Storage on it."""
    with S3Server() as server:
        use_s3(settings, server)
        yield server


@pytest.fixture
def redis_url(tmp_path):
    """A private redis-server on a free loopback port, with a password: no other process shares it."""
    require(REDIS_SERVER, "redis-server", "the tests that need Redis")
    with redis_server(tmp_path / "redis", password=secrets.token_hex(16)) as (url, _server):
        yield url
