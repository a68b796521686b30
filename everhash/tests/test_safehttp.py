"""The untrusted-URL download helper, against real loopback servers.

Loopback is reached through `allow_private` (the EVERHASH_ALLOW_PRIVATE_ADDRESSES setting), never by
patching the guard: the guard itself is what these tests exercise. DNS is faked only at our own
wrapper, `safehttp._resolve`, to give host names addresses without a resolver.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from everhash.lib import safehttp
from everhash.lib.safehttp import DownloadError, FetchResult, download_image, fetch, is_denied_address
from everhash.testing.media_server import MediaServer
from everhash.testing.processes import free_port

MIB = 1024 * 1024
PICTURE = b"\xff\xd8\xff\xe0" + b"a sunset, honestly" * 50


@pytest.fixture
def media(tls_ca) -> Iterator[MediaServer]:
    """The HTTPS media server on 127.0.0.1, the address the tests exempt."""
    with MediaServer(tls_ca.server_context()) as server:
        server.add("/a.jpg", PICTURE)
        yield server


@pytest.fixture
def media_on_127_0_0_2(tls_ca) -> Iterator[MediaServer]:
    """A second server on a loopback address that stays blocked."""
    with MediaServer(tls_ca.server_context(), host="127.0.0.2") as server:
        server.add("/a.jpg", PICTURE)
        yield server


@pytest.fixture
def plain_media() -> Iterator[MediaServer]:
    with MediaServer() as server:
        server.add("/a.jpg", PICTURE)
        yield server


@pytest.fixture
def download(tls_ca) -> Callable[..., FetchResult]:
    """fetch() as the tests use it: 127.0.0.1 allowed and exempt, the test CA trusted, 1 MiB cap."""

    def download(url: str, **overrides: object) -> FetchResult:
        options = {
            "allowed_hosts": ["127.0.0.1"],
            "allow_private": ["127.0.0.1"],
            "max_bytes": MIB,
            "ca_bundle": tls_ca.ca_path,
            "deadline": 5.0,
        }
        return fetch(url, **{**options, **overrides})

    return download


class FakeDNS:
    def __init__(self, real: Callable[[str, int], list[str]]) -> None:
        self.answers: dict[str, list[str]] = {}
        self.lookups: list[str] = []
        self._real = real

    def resolve(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        return self.answers[host] if host in self.answers else self._real(host, port)


@pytest.fixture
def dns(monkeypatch) -> FakeDNS:
    """Names in `dns.answers` resolve as listed; other names resolve normally."""
    fake = FakeDNS(safehttp._resolve)
    monkeypatch.setattr(safehttp, "_resolve", fake.resolve)
    return fake


def refusal(call: Callable[[], object]) -> DownloadError:
    with pytest.raises(DownloadError) as caught:
        call()
    return caught.value


# --- the address guard -------------------------------------------------------------------------

DENIED = [
    "0.0.0.0",  # noqa: S104 - unspecified
    "0.1.2.3",  # "this network"
    "10.0.0.1",
    "10.255.255.255",
    "100.64.0.1",  # carrier-grade NAT, which is_private misses on 3.11
    "100.127.255.254",
    "127.0.0.1",
    "127.0.0.2",
    "127.255.255.254",
    "169.254.169.254",  # cloud metadata
    "169.254.0.1",
    "172.16.0.1",
    "172.31.255.255",
    "192.0.0.8",
    "192.0.2.1",
    "192.88.99.1",
    "192.168.1.1",
    "198.18.0.1",
    "198.19.255.255",
    "198.51.100.7",
    "203.0.113.9",
    "224.0.0.1",  # multicast
    "239.255.255.250",
    "240.0.0.1",  # reserved
    "255.255.255.255",  # broadcast
    "::",  # unspecified
    "::1",  # loopback
    "::127.0.0.1",  # deprecated IPv4-compatible
    "::8.8.8.8",
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:169.254.169.254",
    "::ffff:10.0.0.1",
    "::ffff:100.64.0.1",
    "::ffff:0:10.0.0.1",  # IPv4-translated
    "64:ff9b::127.0.0.1",  # NAT64 of loopback
    "64:ff9b::169.254.169.254",
    "64:ff9b::192.168.0.1",
    "64:ff9b:1::1",  # local-use NAT64
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    "2002:c0a8:101::1",  # 6to4 of 192.168.1.1
    "2001::1",  # Teredo
    "2001:db8::1",  # documentation
    "3fff::1",
    "100::1",  # discard-only
    "5f00::1",
    "fc00::1",  # unique local
    "fd12:3456:789a::1",
    "fe80::1",  # link-local
    "fe80::1%1",
    "fec0::1",  # site-local
    "ff02::1",  # multicast
    "ff05::1:3",
    "4000::1",  # not allocated as global unicast
]

PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    "151.101.0.1",
    "100.63.255.255",  # just below carrier-grade NAT
    "100.128.0.0",  # just above
    "172.15.255.255",
    "172.32.0.1",
    "192.167.255.255",
    "192.169.0.1",
    "198.17.255.255",
    "198.20.0.1",
    "223.255.255.254",
    "2606:4700:4700::1111",
    "2a03:2880:f12d:83:face:b00c:0:25de",
    "::ffff:8.8.8.8",  # mapped, NAT64 and 6to4 forms are judged by the IPv4 address inside
    "64:ff9b::8.8.8.8",
    "2002:808:808::1",
]


@pytest.mark.parametrize("address", DENIED)
def test_the_address_guard_denies(address):
    assert is_denied_address(address)


@pytest.mark.parametrize("address", PUBLIC)
def test_the_address_guard_allows_public_addresses(address):
    assert not is_denied_address(address)


# --- downloads ---------------------------------------------------------------------------------


def test_it_downloads_a_picture_over_https_trusting_the_given_ca(media, download):
    result = download(media.url("/a.jpg?name=orig"))

    assert result == FetchResult(body=PICTURE, content_type="image/jpeg", url=media.url("/a.jpg?name=orig"))
    assert media.hits["/a.jpg"] == 1
    assert media.last_headers["/a.jpg"]["Accept-Encoding"] == "identity"


def test_it_refuses_a_certificate_from_an_unknown_authority(media, download):
    assert refusal(lambda: download(media.url("/a.jpg"), ca_bundle=None)).reason == "tls"


@pytest.mark.parametrize(
    "url",
    [
        "https://localhost/a.jpg",
        "https://pbs.twimg.com.evil.example/a.jpg",
        "https://evil.example/pbs.twimg.com/a.jpg",
        "https://evil.example/?host=pbs.twimg.com",
        "https://pbs.twimg.com./a.jpg",
    ],
)
def test_it_refuses_a_host_not_in_the_allowlist(url, download):
    error = refusal(lambda: download(url, allowed_hosts=["pbs.twimg.com", "127.0.0.1"]))
    assert error.reason == "host_not_allowed"


@pytest.mark.parametrize(
    "url",
    [
        "https://user:secret@127.0.0.1/a.jpg",
        "https://pbs.twimg.com@127.0.0.1/a.jpg",
        "https://127.0.0.1:443@evil.example/a.jpg",
        "https://@127.0.0.1/a.jpg",
    ],
)
def test_it_refuses_a_user_name_or_password_in_the_url(url, download):
    assert refusal(lambda: download(url)).reason == "userinfo"


@pytest.mark.parametrize(
    "url",
    [
        "ftp://127.0.0.1/a.jpg",
        "file:///etc/passwd",
        "gopher://127.0.0.1:70/",
        "data:image/jpeg;base64,/9j/4AAQ",
        "//127.0.0.1/a.jpg",
    ],
)
def test_it_refuses_schemes_other_than_https(url, download):
    assert refusal(lambda: download(url)).reason == "scheme"


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1:99999/a.jpg",
        "https://[::1/a.jpg",
        "https://127.0.0.1/a b.jpg",
        "https://127.0.0.1/\u00e9.jpg",
    ],
)
def test_it_refuses_a_malformed_url(url, download):
    assert refusal(lambda: download(url)).reason == "url"


def test_it_allows_plain_http_to_an_exempt_address(plain_media, download):
    assert download(plain_media.url("/a.jpg")).body == PICTURE


def test_it_refuses_plain_http_to_an_address_that_is_not_exempt(dns, download):
    dns.answers["media.example"] = ["93.184.215.14"]
    error = refusal(lambda: download("http://media.example/a.jpg", allowed_hosts=["media.example"]))
    assert error.reason == "scheme"


def test_it_refuses_ports_other_than_80_and_443_outside_the_exemption(dns, download):
    dns.answers["media.example"] = ["93.184.215.14"]
    error = refusal(lambda: download("https://media.example:8443/a.jpg", allowed_hosts=["media.example"]))
    assert error.reason == "port"


def test_it_refuses_127_0_0_2_while_only_127_0_0_1_is_exempt(media_on_127_0_0_2, download):
    url = media_on_127_0_0_2.url("/a.jpg")
    error = refusal(lambda: download(url, allowed_hosts=["127.0.0.1", "127.0.0.2"]))

    assert error.reason == "private_address"
    assert media_on_127_0_0_2.hits["/a.jpg"] == 0


def test_it_reaches_127_0_0_2_when_its_whole_network_is_exempt(media_on_127_0_0_2, download):
    url = media_on_127_0_0_2.url("/a.jpg")
    result = download(url, allowed_hosts=["127.0.0.2"], allow_private=["127.0.0.0/8"])
    assert result.body == PICTURE


def test_it_rejects_a_malformed_exemption(media, download):
    with pytest.raises(ValueError, match="host bits"):
        download(media.url("/a.jpg"), allow_private=["127.0.0.1/8"])


def test_it_refuses_a_host_when_any_dns_answer_is_denied(media, dns, download):
    dns.answers["localhost"] = ["127.0.0.1", "10.0.0.7"]
    error = refusal(lambda: download(media.url("/a.jpg", host="localhost"), allowed_hosts=["localhost"]))

    assert error.reason == "private_address"
    assert media.hits["/a.jpg"] == 0


def test_it_connects_to_the_checked_address_but_names_the_host_to_the_server(media, dns, download):
    dns.answers["localhost"] = ["127.0.0.1"]
    result = download(media.url("/a.jpg", host="localhost"), allowed_hosts=["LocalHost"])

    assert result.body == PICTURE
    assert dns.lookups == ["localhost"]  # resolved once: what was checked is what was dialled
    assert media.last_headers["/a.jpg"]["Host"] == f"localhost:{media.port}"


def test_it_checks_the_certificate_against_the_host_name_not_the_address(media, dns, download):
    dns.answers["media.example"] = ["127.0.0.1"]
    url = media.url("/a.jpg", host="media.example")
    error = refusal(lambda: download(url, allowed_hosts=["media.example"]))

    assert error.reason == "tls"
    assert "media.example" in str(error)


# --- redirects ---------------------------------------------------------------------------------


def test_it_follows_three_redirects_relative_or_absolute(media, download):
    media.add_behaviour("/r1", "redirect", to="/r2")
    media.add_behaviour("/r2", "redirect", to=media.url("/r3"), status=301)
    media.add_behaviour("/r3", "redirect", to="/a.jpg?name=orig", status=308)

    result = download(media.url("/r1"))

    assert result.body == PICTURE
    assert result.url == media.url("/a.jpg?name=orig")


def test_it_refuses_a_fourth_redirect(media, download):
    for step in range(1, 5):
        media.add_behaviour(f"/r{step}", "redirect", to=f"/r{step + 1}")
    media.add("/r5", PICTURE)

    assert refusal(lambda: download(media.url("/r1"))).reason == "too_many_redirects"
    assert media.hits["/r4"] == 1
    assert media.hits["/r5"] == 0


def test_it_refuses_a_redirect_to_127_0_0_2(media, media_on_127_0_0_2, download):
    media.add_behaviour("/go", "redirect", to=media_on_127_0_0_2.url("/a.jpg"))
    error = refusal(lambda: download(media.url("/go"), allowed_hosts=["127.0.0.1", "127.0.0.2"]))

    assert error.reason == "private_address"
    assert media.hits["/go"] == 1
    assert media_on_127_0_0_2.hits["/a.jpg"] == 0


def test_it_rechecks_the_host_allowlist_on_a_redirect(media, download):
    media.add_behaviour("/go", "redirect", to=media.url("/a.jpg", host="localhost"))
    assert refusal(lambda: download(media.url("/go"))).reason == "host_not_allowed"


def test_it_refuses_a_redirect_from_https_to_http(media, plain_media, download):
    media.add_behaviour("/go", "redirect", to=plain_media.url("/a.jpg"))

    assert refusal(lambda: download(media.url("/go"))).reason == "downgrade"
    assert plain_media.hits["/a.jpg"] == 0


# --- time and size -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["drip", "stall"])
def test_it_gives_up_on_a_slow_server_at_the_total_deadline(kind, media, download):
    media.add_behaviour("/slow.jpg", kind)  # one byte every 0.5 s / no answer for 30 s
    started = time.monotonic()

    error = refusal(lambda: download(media.url("/slow.jpg"), deadline=1.5, read_timeout=10))

    assert error.reason == "timeout"
    assert time.monotonic() - started < 3


def test_it_refuses_a_huge_content_length_before_reading(media, download):
    media.add_behaviour("/huge.jpg", "huge_length")
    error = refusal(lambda: download(media.url("/huge.jpg")))

    assert error.reason == "too_large"
    assert "10737418240" in str(error)


def test_it_reads_no_further_than_a_lying_content_length(media, download):
    media.add_behaviour("/liar.jpg", "lying_length", claimed=1000, size=5 * MIB)
    assert len(download(media.url("/liar.jpg")).body) == 1000


@pytest.mark.parametrize("kind", ["no_length", "chunked"])
def test_it_stops_a_body_of_unknown_length_at_the_cap(kind, media, download):
    media.add_behaviour("/endless.jpg", kind, size=5 * MIB)
    assert refusal(lambda: download(media.url("/endless.jpg"))).reason == "too_large"


@pytest.mark.parametrize("kind", ["no_length", "chunked"])
def test_it_accepts_a_body_of_exactly_the_cap(kind, media, download):
    media.add_behaviour("/full.jpg", kind, size=MIB)
    assert len(download(media.url("/full.jpg")).body) == MIB


def test_it_refuses_a_body_shorter_than_its_content_length(media, download):
    media.add_behaviour("/cut.jpg", "huge_length", length=2048)  # sends 1024 bytes, then closes
    assert refusal(lambda: download(media.url("/cut.jpg"))).reason == "connection"


@pytest.mark.parametrize("header", ["Content-Encoding", "Transfer-Encoding"])
def test_it_refuses_a_compressed_response(header, media, download):
    media.add_behaviour("/packed.jpg", "gzip", header=header)

    assert refusal(lambda: download(media.url("/packed.jpg"))).reason == "encoding"
    assert media.last_headers["/packed.jpg"]["Accept-Encoding"] == "identity"


@pytest.mark.parametrize("code", [404, 500])
def test_it_reports_an_error_status(code, media, download):
    media.add_behaviour("/broken.jpg", "status", code=code)
    error = refusal(lambda: download(media.url("/broken.jpg")))

    assert error.reason == "http_status"
    assert str(code) in str(error)


def test_it_reports_a_refused_connection(download):
    url = f"https://127.0.0.1:{free_port()}/a.jpg"  # a loopback port nobody listens on
    assert refusal(lambda: download(url)).reason == "connection"


def test_it_ignores_proxies_from_the_environment(media, download, monkeypatch):
    dead_proxy = f"http://127.0.0.1:{free_port()}"  # a loopback port nobody listens on
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, dead_proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)

    assert download(media.url("/a.jpg")).body == PICTURE


# --- download_image ----------------------------------------------------------------------------


@pytest.fixture
def media_settings(settings, tls_ca):
    settings.EVERHASH_MEDIA_HOSTS = ["127.0.0.1"]
    settings.EVERHASH_ALLOW_PRIVATE_ADDRESSES = ["127.0.0.1"]
    settings.EVERHASH_CA_BUNDLE = tls_ca.ca_path
    settings.EVERHASH_MAX_IMAGE_BYTES = MIB
    return settings


def test_download_image_uses_the_hosts_exemption_and_ca_from_settings(media, media_settings):
    assert download_image(media.url("/a.jpg")) == PICTURE


def test_download_image_applies_the_size_cap_from_settings(media, media_settings):
    media_settings.EVERHASH_MAX_IMAGE_BYTES = len(PICTURE) - 1
    assert refusal(lambda: download_image(media.url("/a.jpg"))).reason == "too_large"


def test_download_image_refuses_hosts_missing_from_settings(media, media_settings):
    media_settings.EVERHASH_MEDIA_HOSTS = ["pbs.twimg.com"]
    assert refusal(lambda: download_image(media.url("/a.jpg"))).reason == "host_not_allowed"
    assert media.hits["/a.jpg"] == 0
