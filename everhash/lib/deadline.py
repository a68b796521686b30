"""A total time limit on one request to an API, whatever client library makes it.

requests' and httpx's timeouts bound each read, not their sum: a server that trickles one byte
every two seconds never times out, and the fetch run waits on it until the next cron run finds it
still running. `Deadline` bounds the whole exchange (headers and body, retries excluded): while it
is open, the client's connections register their socket with it (through a thread-local) each
time they send or read, and a timer shuts that socket down when time runs out, which wakes the
blocked read with an error. Whoever opened the deadline reads `expired` to tell that error from a
server hanging up.

The hooks: `DeadlineAdapter` here, for requests (twython for X, Mastodon.py): mount it on the
session for https://. httpx's (atproto for Bluesky) is in tweets/bluesky_api.py, the one module
that imports httpx, which web processes never load.

Media downloads have their own deadline (everhash/lib/safehttp.py), which owns its sockets.
"""

from __future__ import annotations

import contextlib
import socket
import threading

import requests.adapters
import urllib3
import urllib3.connection
import urllib3.connectionpool


class Deadline:
    """`with Deadline(seconds) as deadline:` around one request; `deadline.expired` afterwards."""

    _local = threading.local()

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> Deadline:
        Deadline._local.current = self
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()
        Deadline._local.current = None
        with self._lock:
            self._sock = None

    @classmethod
    def watch(cls, sock: socket.socket | None) -> None:
        """Called by the hooks below with the socket a request is about to use."""
        deadline = getattr(cls._local, "current", None)
        if deadline is None or sock is None:
            return
        with deadline._lock:
            deadline._sock = sock
            if deadline.expired:
                _shutdown(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            if self._sock is not None:
                _shutdown(self._sock)


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the TCP stream only, not the TLS state


class _WatchedConnection(urllib3.connection.HTTPSConnection):
    def getresponse(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        Deadline.watch(self.sock)
        return super().getresponse(*args, **kwargs)


class _WatchedPool(urllib3.connectionpool.HTTPSConnectionPool):
    ConnectionCls = _WatchedConnection


class DeadlineAdapter(requests.adapters.HTTPAdapter):
    """requests' adapter whose https connections obey `Deadline`."""

    def init_poolmanager(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().init_poolmanager(*args, **kwargs)
        _watch_pools(self.poolmanager)

    def proxy_manager_for(self, proxy, **proxy_kwargs):  # type: ignore[no-untyped-def]
        # Through an operator's HTTPS_PROXY too (a CONNECT tunnel is still an https pool).
        return _watch_pools(super().proxy_manager_for(proxy, **proxy_kwargs))


def _watch_pools(manager: urllib3.PoolManager) -> urllib3.PoolManager:
    manager.pool_classes_by_scheme = {**manager.pool_classes_by_scheme, "https": _WatchedPool}
    return manager
