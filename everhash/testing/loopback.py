"""The plumbing shared by the loopback HTTPS fakes of Mastodon and Bluesky (fake_mastodon.py,
fake_bluesky.py): a threaded TLS server on 127.0.0.1, request recording, queued misbehaviour.

A fake subclasses `LoopbackAPI` and implements `answer(request) -> Reply`. Misbehaviour common to
every API (`fail_next`) is handled here: `timeout` (answer late), `disconnect` (close without
answering), `malformed_json` (a truncated body), `502` (an HTML page, as a load balancer sends),
`drip` (the right answer, its body one byte every `interval` seconds, default 0.5).
Other kinds are left to the fake's `answer`, which finds them in `request.failure`.
"""

from __future__ import annotations

import json
import socket
import ssl
from collections import deque
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

from everhash.testing.tls_server import TLSServer, TrackedHandler

COMMON_FAILURES = {"timeout", "disconnect", "malformed_json", "502", "drip"}


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


class _Handler(TrackedHandler):
    owner: LoopbackAPI

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        if self.owner.down:
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
        with self.owner.lock:
            self.owner.requests.append(request)
        reply = self.owner.answer(request)
        kind, opts = request.failure or (None, {})
        if kind == "disconnect":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if kind == "timeout" and self.owner._stopping.wait(float(opts.get("delay", 5.0))):
            return
        if kind == "malformed_json":
            reply = Reply(200, b'[{"id": "1130000', reply.headers)
        if kind == "502":
            page = b"<html><head><title>502 Bad Gateway</title></head><body>Bad Gateway</body></html>"
            reply = Reply(502, page, {**reply.headers, "content-type": "text/html"})
        request.status = reply.status
        payload = reply.encoded()
        drip = float(opts.get("interval", 0.5)) if kind == "drip" else None
        self.send_answer(reply.status, reply.headers, payload, drip=drip)


class LoopbackAPI(TLSServer):
    """A threaded HTTPS server on an ephemeral 127.0.0.1 port; subclasses answer requests."""

    failure_kinds: frozenset[str] = frozenset()
    handler = _Handler

    def __init__(self, tls_context: ssl.SSLContext, *, host: str = "127.0.0.1") -> None:
        super().__init__(tls_context, host=host)
        self.requests: list[Request] = []
        self._failures: deque[tuple[str, dict]] = deque()
        self.down = False  # True: every connection is closed at once, as a dead instance would

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
