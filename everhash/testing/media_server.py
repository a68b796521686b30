"""A media server on loopback that serves pictures and misbehaves on demand.

Download code is tested against a real HTTP(S) server rather than a faked client: only a real
socket shows a deadline, a size cap or a redirect check actually working. Reusable by any test or
benchmark:

    with MediaServer(tls_ca.server_context()) as media:
        media.add("/a.jpg", jpeg_bytes)
        media.add_behaviour("/slow.jpg", "drip", interval=0.5)
        download(media.url("/a.jpg"))
        assert media.hits["/a.jpg"] == 1

Paths are matched and counted without their query string, so "/a.jpg?name=orig" is "/a.jpg".
"""

from __future__ import annotations

import gzip
import inspect
import socket
import ssl
import sys
import threading
from collections import Counter
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

TEN_GIB = 10 * 1024**3


class MediaServer:
    """A threaded HTTP server (HTTPS when given an ssl.SSLContext) on an ephemeral loopback port.

    It starts at once and stops on close() or at the end of a `with` block, waiting for every
    request thread, so no thread outlives a test. `host` may be another loopback address
    (Linux answers on all of 127.0.0.0/8), e.g. to prove that 127.0.0.2 stays blocked.
    """

    def __init__(self, tls_context: ssl.SSLContext | None = None, *, host: str = "127.0.0.1") -> None:
        self.host = host
        self.scheme = "https" if tls_context is not None else "http"
        self.hits: Counter[str] = Counter()  # requests per path
        self.last_headers: dict[str, Message] = {}  # the latest request's headers per path
        self._routes: dict[str, tuple[str, dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self.stopping = threading.Event()
        self._httpd = _Server((host, 0), self, tls_context)
        self.port: int = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name=f"media-server-{self.port}"
        )
        self._thread.start()

    def url(self, path: str, *, host: str | None = None) -> str:
        """The full URL of `path`; `host` names the server differently (e.g. "localhost")."""
        return f"{self.scheme}://{host or self.host}:{self.port}{path}"

    def add(self, path: str, body: bytes, content_type: str = "image/jpeg") -> None:
        self.add_behaviour(path, "body", body=body, content_type=content_type)

    def add_behaviour(self, path: str, kind: str, **opts: Any) -> None:
        """Serve `path` the way `kind` says, one of the _Handler.serve_* methods:

        - "drip": `body` one byte every `interval` seconds (default 0.5), with an honest length;
        - "huge_length": announces `length` bytes (default 10 GiB), sends a little, closes;
        - "lying_length": announces `claimed` bytes but sends `size`;
        - "no_length": `size` bytes without Content-Length, ended by closing the connection;
        - "chunked": `size` bytes in chunked transfer encoding;
        - "stall": answers nothing for `seconds` (default 30), then `body`;
        - "redirect": `status` (default 302) to `to`, a URL or a path;
        - "status": answers `code` (e.g. 404, 500);
        - "gzip": `body` gzip-compressed, announced in `header` (default Content-Encoding).
        """
        method = getattr(_Handler, f"serve_{kind}", None)
        if method is None:
            raise ValueError(f"unknown media server behaviour {kind!r}")
        inspect.signature(method).bind(None, **opts)  # a wrong option fails here, not in a server thread
        with self._lock:
            self._routes[path] = (kind, opts)

    def close(self) -> None:
        if self.stopping.is_set():
            return
        self.stopping.set()  # ends drips early
        self._httpd.shutdown()
        self._httpd.server_close()  # joins the request threads
        self._thread.join()

    def __enter__(self) -> MediaServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _route(self, path: str, headers: Message) -> tuple[str, dict[str, Any]] | None:
        with self._lock:
            self.hits[path] += 1
            self.last_headers[path] = headers
            return self._routes.get(path)


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # so server_close() waits for request threads
    request_queue_size = 128  # benchmarks open many connections at once

    def __init__(self, address: tuple[str, int], media: MediaServer, tls_context: ssl.SSLContext | None) -> None:
        self.media = media
        self.tls_context = tls_context
        super().__init__(address, _Handler)

    def finish_request(self, request: socket.socket, client_address: Any) -> None:
        """The TLS handshake happens here, in the request's thread, so a silent client cannot
        block the accept loop."""
        request.settimeout(_Handler.timeout)
        if self.tls_context is None:
            super().finish_request(request, client_address)
            return
        try:
            tls = self.tls_context.wrap_socket(request, server_side=True)
        except OSError:
            return  # the client gave up or refused our certificate: that is its test's business
        try:
            super().finish_request(tls, client_address)
        finally:
            tls.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError | ssl.SSLError):
            return  # clients hanging up mid-answer is what many tests do on purpose
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = 5  # seconds a client may stay silent: keeps close() from waiting long

    def do_GET(self) -> None:  # the name http.server calls
        path = urlsplit(self.path).path
        route = self.server.media._route(path, self.headers)
        if route is None:
            self.serve_status(404)
            return
        kind, opts = route
        getattr(self, f"serve_{kind}")(**opts)
        self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    def _head(self, status: int, headers: dict[str, str | int]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, str(value))
        self.end_headers()

    def serve_body(self, body: bytes, content_type: str = "image/jpeg") -> None:
        self._head(200, {"Content-Type": content_type, "Content-Length": len(body)})
        self.wfile.write(body)

    def serve_drip(self, body: bytes = b"x" * 1000, interval: float = 0.5) -> None:
        self._head(200, {"Content-Type": "image/jpeg", "Content-Length": len(body)})
        for index in range(len(body)):
            if self.server.media.stopping.wait(interval):
                return
            self.wfile.write(body[index : index + 1])
            self.wfile.flush()

    def serve_stall(self, seconds: float = 30.0, body: bytes = b"x" * 1000) -> None:
        if not self.server.media.stopping.wait(seconds):
            self.serve_body(body)

    def serve_huge_length(self, length: int = TEN_GIB) -> None:
        self._head(200, {"Content-Type": "image/jpeg", "Content-Length": length})
        self.wfile.write(b"x" * 1024)

    def serve_lying_length(self, claimed: int = 1000, size: int = 5 * 1024 * 1024) -> None:
        self._head(200, {"Content-Type": "image/jpeg", "Content-Length": claimed})
        self._stream(size)

    def serve_no_length(self, size: int = 5 * 1024 * 1024) -> None:
        self._head(200, {"Content-Type": "image/jpeg"})
        self._stream(size)

    def serve_chunked(self, size: int = 5 * 1024 * 1024) -> None:
        self.protocol_version = "HTTP/1.1"  # chunked encoding is HTTP/1.1
        self._head(200, {"Content-Type": "image/jpeg", "Transfer-Encoding": "chunked", "Connection": "close"})
        for start in range(0, size, 64 * 1024):
            chunk = b"x" * min(64 * 1024, size - start)
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        self.wfile.write(b"0\r\n\r\n")

    def serve_redirect(self, to: str, status: int = 302) -> None:
        self._head(status, {"Location": to, "Content-Length": 0})

    def serve_status(self, code: int) -> None:
        body = f"HTTP {code}".encode()
        self._head(code, {"Content-Type": "text/plain", "Content-Length": len(body)})
        self.wfile.write(body)

    def serve_gzip(self, body: bytes = b"x" * 1000, header: str = "Content-Encoding") -> None:
        compressed = gzip.compress(body)
        self._head(200, {"Content-Type": "image/jpeg", header: "gzip", "Content-Length": len(compressed)})
        self.wfile.write(compressed)

    def _stream(self, size: int) -> None:
        for start in range(0, size, 64 * 1024):
            self.wfile.write(b"x" * min(64 * 1024, size - start))
