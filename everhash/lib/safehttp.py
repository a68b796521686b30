"""The one way to download a URL someone else chose (image URLs found in posts).

An attacker controls the URL, the DNS answers and the server, so everything is checked: the
scheme, the host (an allowlist), every DNS answer, the address actually dialled (the one that was
checked, so DNS cannot change its mind in between), every redirect, the time spent and the bytes.

It is built on the standard library (socket, ssl, http.client) rather than requests or urllib3:
the total deadline must be able to cut the connection in any phase (TLS handshake, headers, body),
which needs the socket before the response headers arrive, and http.client never reads proxy
settings from the environment. Tests reach loopback servers through `allow_private`, a setting,
never by patching the checks away.
"""

from __future__ import annotations

import hashlib
import http.client
import ipaddress
import os
import socket
import ssl
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from http.client import HTTPResponse
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urljoin, urlsplit

import certifi
from django.conf import settings

from everhash.lib.deadline import Deadline

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Never dialled unless inside `allow_private`. Written out because `is_private`/`is_global` on
# Python 3.11 miss some (100.64.0.0/10 is neither, and mapped or NAT64 forms are not unwrapped).
DENIED_NETWORKS: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(network)
    for network in (
        "0.0.0.0/8",  # "this network", includes the unspecified 0.0.0.0
        "10.0.0.0/8",  # private
        "100.64.0.0/10",  # carrier-grade NAT
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local, includes cloud metadata at 169.254.169.254
        "172.16.0.0/12",  # private
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation
        "192.88.99.0/24",  # former 6to4 relay anycast
        "192.168.0.0/16",  # private
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation
        "203.0.113.0/24",  # documentation
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, includes broadcast 255.255.255.255
        # IPv6. Mapped (::ffff:0:0/96), NAT64 (64:ff9b::/96) and 6to4 (2002::/16) addresses are
        # judged by the IPv4 address they embed, see _embedded_ipv4().
        "::/96",  # unspecified, loopback ::1, deprecated IPv4-compatible
        "::ffff:0:0:0/96",  # IPv4-translated
        "64:ff9b:1::/48",  # local-use NAT64
        "100::/64",  # discard-only
        "2001::/23",  # IETF protocol assignments, includes Teredo 2001::/32
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation
        "5f00::/16",  # SRv6 segment identifiers
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local (deprecated)
        "ff00::/8",  # multicast
    )
)
# Belt and braces: IPv6 outside global unicast is reserved, whatever the list above forgot.
IPV6_GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")
NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")

DEFAULT_PORTS = {"http": 80, "https": 443}
REDIRECT_STATUSES = {301, 302, 303, 307, 308}
CHUNK_SIZE = 64 * 1024


class DownloadError(Exception):
    """A refused or failed download. `reason` is a short code for logs and metrics ("too_large",
    "private_address"...); str(exc) is a sentence for people. `status`: the HTTP status of an
    "http_status" refusal."""

    def __init__(self, reason: str, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class FetchResult:
    body: bytes
    content_type: str  # as the server said it: advisory, the image decoder decides
    url: str  # after redirects


def is_denied_address(address: str | IPAddress) -> bool:
    """True for addresses that lead inside a network rather than to a public server."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return is_denied_address(embedded)
        if ip not in IPV6_GLOBAL_UNICAST:
            return True
    return any(ip in network for network in DENIED_NETWORKS)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address that an IPv4-mapped, 6to4 or NAT64 address really reaches."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in NAT64_WELL_KNOWN:
        return ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)
    return None


def fetch(
    url: str,
    *,
    allowed_hosts: Iterable[str] | None,
    allow_private: Iterable[str] = (),
    max_bytes: int,
    deadline: float = 30.0,
    connect_timeout: float = 5.0,
    read_timeout: float = 10.0,
    max_redirects: int = 3,
    ca_bundle: str | None = None,
) -> FetchResult:
    """GET `url` and return its body, or raise DownloadError.

    `allowed_hosts` is the allowlist of host names; None allows any host (the fediverse's media
    lives on thousands), which leaves the address checks below as the protection.
    `allow_private` lists addresses or networks (e.g. "127.0.0.1") that may be reached although
    denied, over http too and on any port: it exists for loopback test servers. A malformed entry
    raises ValueError, since it is a configuration mistake rather than a bad URL.
    """
    hosts = None if allowed_hosts is None else {host.lower() for host in allowed_hosts}
    exempt = [ipaddress.ip_network(entry.strip()) for entry in allow_private]
    context = _tls_context(ca_bundle)
    came_from: _Target | None = None
    with _Budget(deadline, connect_timeout, read_timeout) as budget:
        try:
            for _ in range(max_redirects + 1):
                target = _check_url(url, hosts, came_from)
                addresses = _check_addresses(target, exempt)
                with _get(target, addresses, context, budget) as response:
                    if response.status in REDIRECT_STATUSES and response.getheader("Location"):
                        came_from, url = target, urljoin(url, response.getheader("Location"))
                        continue
                    if not 200 <= response.status < 300:
                        raise DownloadError(
                            "http_status", f"the server answered HTTP {response.status}", status=response.status
                        )
                    body = _read_body(response, max_bytes, budget)
                    return FetchResult(body, response.getheader("Content-Type", ""), url)
        except (OSError, http.client.HTTPException) as exc:
            raise _transport_error(exc, budget) from exc
    raise DownloadError("too_many_redirects", f"more than {max_redirects} redirects")


def download_image(url: str, *, any_public_host: bool = False) -> bytes:
    """Download a picture within the configured size cap, from a configured media host
    (EVERHASH_MEDIA_HOSTS, X's allowlist) or, with `any_public_host`, from any host whose
    addresses pass the guard (Mastodon and Bluesky media live on many hosts)."""
    return fetch(
        url,
        allowed_hosts=None if any_public_host else settings.EVERHASH_MEDIA_HOSTS,
        allow_private=settings.EVERHASH_ALLOW_PRIVATE_ADDRESSES,
        max_bytes=settings.EVERHASH_MAX_IMAGE_BYTES,
        ca_bundle=settings.EVERHASH_CA_BUNDLE or None,
        deadline=30.0,
    ).body


class _Target(NamedTuple):
    scheme: str
    host: str
    port: int
    path: str  # with the query string


def _check_url(url: str, hosts: set[str] | None, came_from: _Target | None) -> _Target:
    if not url.isascii() or any(char <= " " or char == "\x7f" for char in url):
        raise DownloadError("url", "the URL contains spaces, control or non-ASCII characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise DownloadError("url", f"malformed URL: {exc}") from exc
    if parts.scheme not in DEFAULT_PORTS:
        raise DownloadError("scheme", f"only https URLs are downloaded, not {parts.scheme or 'this'}")
    if came_from is not None and came_from.scheme == "https" and parts.scheme == "http":
        raise DownloadError("downgrade", "refused a redirect from https to http")
    if "@" in parts.netloc:
        raise DownloadError("userinfo", "URLs with a user name or password are refused")
    if not parts.hostname or (hosts is not None and parts.hostname not in hosts):
        raise DownloadError("host_not_allowed", f"{parts.hostname or 'no host'} is not an allowed media host")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return _Target(parts.scheme, parts.hostname, port or DEFAULT_PORTS[parts.scheme], path)


def _check_addresses(target: _Target, exempt: list[IPNetwork]) -> list[str]:
    """Resolve once and vet every answer. One bad answer refuses the host: the connection (or a
    fallback to the next address) must only ever reach an address that was checked."""
    addresses = _resolve(target.host, target.port)
    for address in addresses:
        ip = ipaddress.ip_address(address)
        if any(ip in network for network in exempt):
            continue
        if is_denied_address(ip):
            where = "is" if target.host == address else f"resolves to {ip}, which is"
            raise DownloadError("private_address", f"{target.host} {where} a private or reserved address")
        if target.scheme != "https":
            raise DownloadError("scheme", "plain http is refused outside the test exemption")
        if target.port not in DEFAULT_PORTS.values():
            raise DownloadError("port", f"port {target.port} is refused, only 80 and 443")
    return addresses


def _resolve(host: str, port: int) -> list[str]:
    """Every address DNS gives for `host`, looked up once (tests replace this to fake DNS)."""
    try:
        answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise DownloadError("dns", f"cannot resolve {host}: {exc}") from exc
    return list(dict.fromkeys(str(answer[4][0]) for answer in answers))


def tls_context(ca_bundle: str | None) -> ssl.SSLContext:
    """The client TLS context everhash trusts: certifi's authorities plus EVERHASH_CA_BUNDLE's
    (for clients that take an SSLContext, such as httpx under the Bluesky SDK). Shared: do not modify."""
    return _tls_context(ca_bundle)


@lru_cache(maxsize=4)
def _tls_context(ca_bundle: str | None) -> ssl.SSLContext:
    """Certificates checked against certifi's authorities plus those in `ca_bundle`, when given."""
    context = ssl.create_default_context(cafile=certifi.where())
    if ca_bundle:
        context.load_verify_locations(cafile=ca_bundle)
    return context


def combined_ca_bundle(extra: str) -> str:
    """A PEM file with certifi's authorities plus those in `extra`, for clients that take one
    file and replace their defaults with it (requests' `verify=`, hence twython).

    Written once per content into EVERHASH_VAR_DIR/ca/, under a name derived from its content.
    """
    try:
        pem = Path(certifi.where()).read_bytes() + b"\n" + Path(extra).read_bytes()
    except OSError as exc:
        raise DownloadError("tls", f"EVERHASH_CA_BUNDLE cannot be read: {exc}") from exc
    folder = Path(settings.VAR_DIR) / "ca"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"everhash-ca-{hashlib.sha256(pem).hexdigest()[:16]}.pem"
    if not path.exists():
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_bytes(pem)
        partial.replace(path)
    return str(path)


class _Budget(Deadline):
    """The time limits of one fetch: per-operation socket timeouts, and a total deadline enforced
    by cutting the socket when it runs out (`Deadline.guard`).

    Socket timeouts bound each read, not their sum: a server sending one byte every half second
    would hold a worker for hours. The timer shuts the guarded socket down, which wakes up whatever
    read or handshake is blocked on it, in any phase.
    """

    def __init__(self, seconds: float, connect_timeout: float, read_timeout: float) -> None:
        super().__init__(seconds)
        self.connect_timeout, self.read_timeout = connect_timeout, read_timeout
        self.ends_at = time.monotonic() + seconds

    def error(self) -> DownloadError:
        return DownloadError("timeout", f"gave up after the {self.seconds:g}-second deadline")

    def remaining(self) -> float:
        left = self.ends_at - time.monotonic()
        if left <= 0 or self.expired:
            raise self.error()
        return left


class _PinnedConnection(http.client.HTTPConnection):
    """An HTTP(S) connection to addresses that were checked, while TLS (SNI and the certificate
    check) and the Host header still name the real host. http.client would resolve the name again."""

    def __init__(self, target: _Target, addresses: list[str], context: ssl.SSLContext | None, budget: _Budget) -> None:
        super().__init__(target.host, target.port, timeout=budget.read_timeout)
        self.addresses, self.context, self.budget = addresses, context, budget

    def connect(self) -> None:
        sock = self._dial()
        try:
            self.budget.guard(sock)
            if self.context is not None:
                sock = self.context.wrap_socket(sock, server_hostname=self.host, do_handshake_on_connect=False)
                self.budget.guard(sock)
                sock.do_handshake()
            sock.settimeout(self.timeout)
        except BaseException:
            self.budget.guard(None)
            sock.close()
            raise
        self.sock = sock

    def _dial(self) -> socket.socket:
        """Connect to the first checked address that answers (IPv6 may be configured but unreachable)."""
        error = OSError(f"no address to connect to for {self.host}")
        for address in self.addresses:
            try:
                timeout = min(self.budget.connect_timeout, self.budget.remaining())
                return socket.create_connection((address, self.port), timeout=timeout)
            except OSError as exc:
                error = exc
        raise error


@contextmanager
def _get(target: _Target, addresses: list[str], context: ssl.SSLContext, budget: _Budget) -> Iterator[HTTPResponse]:
    """Send the GET and yield the response with its headers read; the connection is closed after."""
    tls = context if target.scheme == "https" else None
    connection = _PinnedConnection(target, addresses, tls, budget)
    host = f"[{target.host}]" if ":" in target.host else target.host
    if target.port != DEFAULT_PORTS[target.scheme]:
        host = f"{host}:{target.port}"
    headers = {"Host": host, "Accept-Encoding": "identity", "Connection": "close", "User-Agent": "everhash"}
    response = None
    try:
        connection.request("GET", target.path, headers=headers)
        response = connection.getresponse()
        yield response
    finally:
        budget.guard(None)
        if response is not None:
            response.close()  # it owns the socket once the headers say "Connection: close"
        connection.close()


def _read_body(response: HTTPResponse, max_bytes: int, budget: _Budget) -> bytes:
    """The body, refused if compressed (a small gzip can inflate to gigabytes) or over `max_bytes`."""
    encoding = response.getheader("Content-Encoding", "identity").strip().lower()
    if encoding != "identity":
        raise DownloadError("encoding", f"compressed responses are refused (Content-Encoding: {encoding})")
    transfer = response.getheader("Transfer-Encoding")
    if transfer is not None and transfer.strip().lower() != "chunked":
        raise DownloadError("encoding", f"compressed responses are refused (Transfer-Encoding: {transfer})")
    declared = None if transfer else _content_length(response)
    if declared is not None and declared > max_bytes:
        raise DownloadError(
            "too_large", f"too large: the server announces {declared} bytes, over the {max_bytes}-byte limit"
        )
    chunks, size = [], 0
    while chunk := response.read1(CHUNK_SIZE):
        size += len(chunk)
        if size > max_bytes:
            raise DownloadError("too_large", f"too large: the body grew past the {max_bytes}-byte limit")
        chunks.append(chunk)
        budget.remaining()
    if budget.expired:  # a cut socket looks like the end of the body
        raise budget.error()
    if declared is not None and size != declared:
        raise DownloadError("connection", f"the connection closed after {size} of {declared} bytes")
    return b"".join(chunks)


def _content_length(response: HTTPResponse) -> int | None:
    value = response.getheader("Content-Length")
    if value is None:
        return None
    if not (value.isascii() and value.strip().isdigit()):
        raise DownloadError("protocol", f"malformed Content-Length {value!r}")
    return int(value)


def _transport_error(exc: OSError | http.client.HTTPException, budget: _Budget) -> DownloadError:
    if budget.expired:
        return budget.error()
    if isinstance(exc, TimeoutError):
        return DownloadError("timeout", f"the server was too slow to answer: {exc}")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return DownloadError("tls", f"certificate refused: {exc.verify_message}")
    if isinstance(exc, ssl.SSLError):
        return DownloadError("tls", f"TLS failed: {exc}")
    return DownloadError("connection", f"the connection failed: {exc!r}")
