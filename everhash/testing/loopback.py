"""The plumbing shared by the loopback HTTPS fakes of Mastodon and Bluesky (fake_mastodon.py,
fake_bluesky.py): a threaded TLS server on 127.0.0.1, request recording, queued misbehaviour.

A fake subclasses `LoopbackAPI` and implements `answer(request) -> Reply`. Misbehaviour common to
every API (`fail_next`) is handled here: `timeout` (answer late), `disconnect` (close without
answering), `malformed_json` (a truncated body), `502` (an HTML page, as a load balancer sends).
Other kinds are left to the fake's `answer`, which finds them in `request.failure`.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

COMMON_FAILURES = {"timeout", "disconnect", "malformed_json", "502"}


@dataclass
class Request:
    method: str
    path: str
    params: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes = b""
    failure: tuple[str, dict] | None = None
    status: int = 0

    def param(self, name: str, default: str | None = None) -> str | None:
        values = self.params.get(name)
        return values[-1] if values else default

    def json(self) -> object:
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None


@dataclass
class Reply:
    status: int
    body: object = None  # JSON-encoded unless bytes
    headers: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body).encode()


class LoopbackAPI:
    """A threaded HTTPS server on an ephemeral 127.0.0.1 port; subclasses answer requests."""

    failure_kinds: frozenset[str] = frozenset()
    name = "loopback-api"

    def __init__(self, tls_context: ssl.SSLContext, *, host: str = "127.0.0.1") -> None:
        self.tls_context = tls_context
        self.host = host
        self.requests: list[Request] = []
        self.lock = threading.RLock()
        self._failures: deque[tuple[str, dict]] = deque()
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.down = False  # True: every connection is closed at once, as a dead instance would

    # -- lifecycle ---------------------------------------------------------------

    def start(self):
        handler = type("Handler", (_Handler,), {"api": self})
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
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self):
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

    @property
    def netloc(self) -> str:
        return f"{self.host}:{self.port}"

    # -- behaviour ---------------------------------------------------------------

    def fail_next(self, kind: str, times: int = 1, **opts: object) -> None:
        """Make the next `times` API answers misbehave. Queued in order."""
        known = self.failure_kinds | COMMON_FAILURES
        if kind not in known:
            raise ValueError(f"unknown failure kind {kind!r}; choose from {sorted(known)}")
        with self.lock:
            self._failures.extend([(kind, dict(opts))] * times)

    def take_failure(self, request: Request) -> None:
        """Called for requests that may misbehave (the fake's API calls, not its media)."""
        with self.lock:
            request.failure = self._failures.popleft() if self._failures else None

    def answer(self, request: Request) -> Reply:
        raise NotImplementedError

    def requests_to(self, path: str) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.path == path]


class _Handler(BaseHTTPRequestHandler):
    api: LoopbackAPI
    protocol_version = "HTTP/1.1"
    timeout = 30

    def setup(self) -> None:
        super().setup()
        with self.api.lock:
            self.api._connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.api.lock:
                self.api._connections.discard(self.connection)

    def handle(self) -> None:
        with contextlib.suppress(OSError):
            super().handle()

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        if self.api.down:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        parts = urlsplit(self.path)
        params: dict[str, list[str]] = {}
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            params.setdefault(key, []).append(value)
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        request = Request(method, parts.path, params, {k.lower(): v for k, v in self.headers.items()}, body)
        with self.api.lock:
            self.api.requests.append(request)
        reply = self.api.answer(request)
        kind, opts = request.failure or (None, {})
        if kind == "disconnect":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if kind == "timeout" and self.api._stopping.wait(float(opts.get("delay", 5.0))):
            return
        if kind == "malformed_json":
            reply = Reply(200, b'[{"id": "1130000', reply.headers)
        if kind == "502":
            page = b"<html><head><title>502 Bad Gateway</title></head><body>Bad Gateway</body></html>"
            reply = Reply(502, page, {**reply.headers, "content-type": "text/html"})
        request.status = reply.status
        payload = reply.encoded()
        self.send_response(reply.status)
        headers = {"content-type": "application/json; charset=utf-8", **reply.headers}
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
