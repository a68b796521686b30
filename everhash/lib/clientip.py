"""The client's address: the one answer every rate limit, API throttle and log line uses.

Behind a reverse proxy the socket's peer (`REMOTE_ADDR`) is the proxy, so every visitor would
share one address and one limit. Only when the peer is one of EVERHASH_TRUSTED_PROXIES is
`X-Forwarded-For` read, from the right: each proxy appends the address it received the request
from, so the rightmost entry that is not itself a trusted proxy is the client. Entries further
left were written by the client and are ignored: a spoofed header bypasses nothing. With no
trusted proxy (the default) the header is never read.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from django.http import HttpRequest

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# Where the answer is kept on the request (its WSGI environ): computed once per request, and
# readable by gunicorn's access log as the atom %({everhash.client_ip}e)s.
ENVIRON_KEY = "everhash.client_ip"


@lru_cache(maxsize=8)
def parse_networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    """Addresses or networks ("10.0.0.7", "10.0.0.0/8", "::1"), or ImproperlyConfigured naming the bad one."""
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ImproperlyConfigured(
                f"EVERHASH_TRUSTED_PROXIES: {entry!r} is not an IP address or network (10.0.0.0/8)."
            ) from None
    return tuple(networks)


def _address(value: str) -> Address | None:
    value = value.strip()
    if value.startswith("[") and "]" in value:  # "[2001:db8::1]:443"
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # "203.0.113.9:51234"
        value = value.partition(":")[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: Address, networks: tuple[Network, ...]) -> bool:
    return any(address.version == network.version and address in network for network in networks)


def client_ip_from(*, peer: str, forwarded_for: str, trusted: tuple[str, ...]) -> str:
    """The client address given the socket's peer, the X-Forwarded-For value and the trusted proxies."""
    networks = parse_networks(tuple(trusted))
    current = _address(peer)
    if current is None:
        return peer or "unknown"
    if not _trusted(current, networks):
        return str(current)
    for entry in reversed(forwarded_for.split(",") if forwarded_for else []):
        address = _address(entry)
        if address is None:
            break  # garbage from a client or a proxy we do not know: stop at the last address we trust
        current = address
        if not _trusted(address, networks):
            break
    return str(current)


def client_ip(request: HttpRequest) -> str:
    """The address of the client that sent `request` (see the module's docstring)."""
    meta = request.META
    if ENVIRON_KEY not in meta:
        meta[ENVIRON_KEY] = client_ip_from(
            peer=meta.get("REMOTE_ADDR", ""),
            forwarded_for=meta.get("HTTP_X_FORWARDED_FOR", ""),
            trusted=tuple(settings.EVERHASH_TRUSTED_PROXIES),
        )
    return meta[ENVIRON_KEY]


class ClientAddressMiddleware:
    """Works out the client address once per request, so the access log can show it too."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        client_ip(request)
        return self.get_response(request)
