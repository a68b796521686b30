"""The threaded HTTPS server on 127.0.0.1 under every API fake (fake_x_api.py, and loopback.py's
Mastodon and Bluesky fakes): an ephemeral port, TLS handshakes in the handler threads (a silent
client cannot stall accept()), keep-alive connections that `stop()` cuts so no handler thread is
left waiting on one.

A fake subclasses `TLSServer` and sets `handler` to a `TrackedHandler` subclass, which reaches the
fake as `self.owner`.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


class TrackedHandler(BaseHTTPRequestHandler):
    owner: TLSServer
    protocol_version = "HTTP/1.1"  # keep-alive, as requests' sessions expect
    timeout = 30  # an idle kept-alive connection is dropped eventually

    def setup(self) -> None:
        super().setup()
        with self.owner.lock:
            self.owner._connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.owner.lock:
                self.owner._connections.discard(self.connection)

    def handle(self) -> None:
        # A client that went away (timeouts, shutdown) is not the fake's problem.
        with contextlib.suppress(OSError):
            super().handle()

    def log_message(self, format: str, *args: object) -> None:
        pass

    def send_answer(self, status: int, headers: dict[str, str], body: bytes, *, drip: float | None = None) -> None:
        """An answer with an honest length (JSON unless `headers` say otherwise). With `drip`, the
        headers at once, then the body one byte per `drip` seconds: every read is quick, the whole
        is not (a per-read timeout never fires; only a total deadline ends it)."""
        self.send_response(status)
        for key, value in {"content-type": "application/json; charset=utf-8", **headers}.items():
            self.send_header(key, value)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        if drip is None:
            self.wfile.write(body)
            return
        self.wfile.flush()
        for i in range(len(body)):
            if self.owner._stopping.wait(drip):
                return
            self.wfile.write(body[i : i + 1])
            self.wfile.flush()


class TLSServer:
    handler: type[TrackedHandler] = TrackedHandler
    name = "loopback-api"

    def __init__(self, tls_context: ssl.SSLContext, *, host: str = "127.0.0.1") -> None:
        self.tls_context = tls_context
        self.host = host
        self.lock = threading.RLock()
        self._stopping = threading.Event()  # set by stop(): handlers answering late give up
        self._connections: set[socket.socket] = set()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        handler = type("Handler", (self.handler,), {"owner": self})
        server = ThreadingHTTPServer((self.host, 0), handler)
        server.daemon_threads = True
        server.block_on_close = False
        server.socket = self.tls_context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,), name=self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        with self.lock:
            connections = list(self._connections)
        for conn in connections:  # wake handler threads waiting on a kept-alive connection
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the fake first"
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"
