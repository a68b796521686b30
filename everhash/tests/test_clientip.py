"""everhash/lib/clientip.py: which address is the client, for every trusted-proxy layout."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import RequestFactory

from everhash.lib.clientip import client_ip, client_ip_from, parse_networks

NGINX = ("127.0.0.1",)
CHAIN = ("127.0.0.1", "10.0.0.0/8", "2001:db8::/32")


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "trusted", "expected"),
    [
        # No trusted proxy (the default): the header is never read.
        ("203.0.113.9", "198.51.100.1", (), "203.0.113.9"),
        ("127.0.0.1", "198.51.100.1", (), "127.0.0.1"),
        # A peer that is not trusted: its header is the client's own words.
        ("203.0.113.9", "198.51.100.1", NGINX, "203.0.113.9"),
        # nginx appended the client; whatever the client wrote is further left.
        ("127.0.0.1", "203.0.113.9", NGINX, "203.0.113.9"),
        ("127.0.0.1", "6.6.6.6, 203.0.113.9", NGINX, "203.0.113.9"),
        ("127.0.0.1", "127.0.0.1, 203.0.113.9", NGINX, "203.0.113.9"),
        # Several proxies: skip every trusted hop from the right.
        ("127.0.0.1", "6.6.6.6, 203.0.113.9, 10.1.2.3", CHAIN, "203.0.113.9"),
        ("127.0.0.1", "203.0.113.9,10.1.2.3,10.9.9.9", CHAIN, "203.0.113.9"),
        ("2001:db8::5", "2001:db8::7, 2a00:1450::1", CHAIN, "2a00:1450::1"),
        # Ports and brackets, as some proxies write them; IPv4-mapped IPv6 peers.
        ("127.0.0.1", "203.0.113.9:51234", NGINX, "203.0.113.9"),
        ("127.0.0.1", "[2a00:1450::1]:443", NGINX, "2a00:1450::1"),
        ("::ffff:127.0.0.1", "203.0.113.9", NGINX, "203.0.113.9"),
        # A trusted peer without the header, or only trusted hops: the leftmost we know.
        ("127.0.0.1", "", NGINX, "127.0.0.1"),
        ("127.0.0.1", "10.0.0.2, 10.0.0.3", CHAIN, "10.0.0.2"),
        # Garbage stops the walk at the last address a trusted proxy vouched for.
        ("127.0.0.1", "203.0.113.9, unknown", NGINX, "127.0.0.1"),
        ("127.0.0.1", "evil, 10.0.0.3", CHAIN, "10.0.0.3"),
    ],
)
def test_the_client_is_the_rightmost_untrusted_entry_behind_a_trusted_peer(peer, forwarded_for, trusted, expected):
    assert client_ip_from(peer=peer, forwarded_for=forwarded_for, trusted=trusted) == expected


def test_a_request_gets_its_address_from_the_settings(settings):
    settings.EVERHASH_TRUSTED_PROXIES = ["127.0.0.1"]
    request = RequestFactory().get("/", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="1.1.1.1, 203.0.113.9")
    assert client_ip(request) == "203.0.113.9"
    settings.EVERHASH_TRUSTED_PROXIES = []
    request = RequestFactory().get("/", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert client_ip(request) == "127.0.0.1"


def test_a_malformed_trusted_proxy_stops_the_process_with_its_name():
    with pytest.raises(ImproperlyConfigured, match="'10.0.0.0/33'"):
        parse_networks(("127.0.0.1", "10.0.0.0/33"))
