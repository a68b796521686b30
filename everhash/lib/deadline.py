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

Media downloads (everhash/lib/safehttp.py) use the same deadline on the sockets they open themselves.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Self

import requests.adapters
import urllib3
import urllib3.connection
import urllib3.connectionpool


class Deadline:
    """`with Deadline(seconds) as deadline:` around one request; `deadline.expired` afterwards.

    A client whose sockets this code creates itself (everhash/lib/safehttp.py) calls `guard(sock)`
    on its own deadline; the library hooks below call `Deadline.watch(sock)`, which finds the
    deadline open in this thread.
    """

    _local = threading.local()

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._outer: Deadline | None = None

    def __enter__(self) -> Self:
        self._outer = getattr(Deadline._local, "current", None)
        Deadline._local.current = self
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()
        Deadline._local.current = self._outer
        self.guard(None)

    def guard(self, sock: socket.socket | None) -> None:
        """Cut `sock` when time runs out (at once if it has). guard(None) before closing a socket:
        its number could be reused."""
        with self._lock:
            self._sock = sock
            if self.expired and sock is not None:
                _shutdown(sock)

    @classmethod
    def watch(cls, sock: socket.socket | None) -> None:
        """Called by the library hooks below with the socket a request is about to use."""
        deadline = getattr(cls._local, "current", None)
        if deadline is not None and sock is not None:
            deadline.guard(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            if self._sock is not None:
                _shutdown(self._sock)


def _shutdown(sock: socket.socket) -> None:
    # socket.socket.shutdown, not SSLSocket.shutdown: only the TCP stream is cut, without touching
    # the TLS state the reading thread is using right now.
    with contextlib.suppress(OSError):  # already closed
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


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
