"""The documented nginx in front of the documented gunicorn: slow clients, connection limits, probes.

The site file is the literal block of docs/deploy.rst, with loopback ports and a throwaway
certificate put in; the page server (gunicorn_conf, one sync worker) and the health instance
(gunicorn_health_conf) run as their systemd units do.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import http.client
import re
import select
import socket
import ssl
import threading
import time
from pathlib import Path

import pytest

from everhash.testing.fixtures import require
from everhash.testing.processes import (
    NGINX,
    ROOT,
    Gunicorn,
    LoopbackCA,
    free_port,
    manage,
    nginx,
    production_environment,
)

SLOW_CLIENTS = 100
HEADER_TIMEOUT = 10  # client_header_timeout in docs/deploy.rst
CONNECTIONS_PER_ADDRESS = 32  # limit_conn in docs/deploy.rst


def documented_site(*, http_port: int, https_port: int, web_port: int, health_port: int, ca: LoopbackCA) -> str:
    """docs/deploy.rst's /etc/nginx/sites-available/everhash, on loopback ports."""
    text = (ROOT / "docs" / "deploy.rst").read_text()
    block = text.split("``/etc/nginx/sites-available/everhash``", 1)[1].split("::\n\n", 1)[1]
    site = "\n".join(line.removeprefix("    ") for line in re.match(r"((?:    .*\n|\n)+)", block).group(1).splitlines())
    assert "client_header_timeout 10s;" in site and f"limit_conn everhash_addr {CONNECTIONS_PER_ADDRESS};" in site
    folder = Path(ca.ca_path).parent
    ca._cert.private_key_and_cert_chain_pem.write_to_path(str(folder / "server.pem"))
    replacements = {
        "server 127.0.0.1:8000 ": f"server 127.0.0.1:{web_port} ",
        "server 127.0.0.1:8001 ": f"server 127.0.0.1:{health_port} ",
        "listen 80;": f"listen 127.0.0.1:{http_port};",
        "listen 443 ssl http2;": f"listen 127.0.0.1:{https_port} ssl http2;",
        "/etc/letsencrypt/live/everhash.example.com/fullchain.pem": str(folder / "server.pem"),
        "/etc/letsencrypt/live/everhash.example.com/privkey.pem": str(folder / "server.pem"),
    }
    for old, new in replacements.items():
        assert old in site, old
        site = site.replace(old, new)
    return site


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    require(NGINX, "nginx-light", "the documented nginx in front of gunicorn")
    tmp = tmp_path_factory.mktemp("nginx")
    env = {**production_environment(tmp), "GUNICORN_WORKERS": "1"}
    manage(env, "migrate", "-v0")
    config = ["-c", "python:everhash.gunicorn_conf"]
    with Gunicorn(env, config, log=tmp / "web.log", bind_variable="GUNICORN_BIND") as web:
        health_env = {**env, "GUNICORN_BIND": f"127.0.0.1:{web.port}"}
        health_config = ["-c", "python:everhash.gunicorn_health_conf"]
        health_log = tmp / "health.log"
        with Gunicorn(health_env, health_config, log=health_log, bind_variable="GUNICORN_HEALTH_BIND") as health:
            ca = LoopbackCA(tmp)
            http_port, https_port = free_port(), free_port()
            site = documented_site(
                http_port=http_port, https_port=https_port, web_port=web.port, health_port=health.port, ca=ca
            )
            with nginx(tmp / "nginx", site, ports=[http_port, https_port]):
                context = ssl.create_default_context(cafile=ca.ca_path)
                yield {"https": https_port, "http": http_port, "web": web.port, "tls": context}


def https_get(stack, path: str, *, timeout: float = 5, source: str = "127.0.0.1") -> tuple[int, bytes, float]:
    """(status, body, seconds) of one GET through nginx over TLS from `source`."""
    connection = http.client.HTTPSConnection(
        "127.0.0.1", stack["https"], timeout=timeout, context=stack["tls"], source_address=(source, 0)
    )
    started = time.perf_counter()
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read(), time.perf_counter() - started
    finally:
        connection.close()


@contextlib.contextmanager
def page_server_held(port: int):
    """The page server's only sync worker held by one client sending its headers slowly, straight
    to gunicorn (what happens without nginx in front)."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    stop = threading.Event()

    def trickle() -> None:
        while not stop.wait(0.5):
            with contextlib.suppress(OSError):
                sock.sendall(b"X")

    thread = threading.Thread(target=trickle)
    thread.start()
    try:
        probe = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        with pytest.raises(TimeoutError):  # it really is held: nothing else gets through directly
            probe.request("GET", "/healthz")
            probe.getresponse()
        probe.close()
        yield
    finally:
        stop.set()
        thread.join()
        sock.close()


def test_slow_clients_are_cut_off_and_real_visitors_are_served(stack):
    async def slow_client() -> float:
        """Sends a request's headers a byte a second from 127.0.0.2; seconds until nginx hangs up."""
        started = time.perf_counter()  # nginx's clock starts at the connection, before the TLS handshake
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", stack["https"], ssl=stack["tls"], local_addr=("127.0.0.2", 0)
        )
        try:
            for byte in b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slowloris" * 10:
                writer.write(bytes([byte]))
                await writer.drain()
                try:
                    await asyncio.wait_for(reader.read(1024), 1)
                except TimeoutError:
                    continue
                return time.perf_counter() - started  # answered (408) or closed
            return float("inf")
        except (ConnectionError, ssl.SSLError):
            return time.perf_counter() - started
        finally:
            writer.close()

    async def visitor() -> list[tuple[int, float]]:
        served = []
        for _ in range(2 * HEADER_TIMEOUT):
            status, _, seconds = await asyncio.to_thread(https_get, stack, "/api/v1/ping/")
            served.append((status, seconds))
            await asyncio.sleep(0.5)
        return served

    async def scenario():
        return await asyncio.gather(asyncio.gather(*(slow_client() for _ in range(SLOW_CLIENTS))), visitor())

    # In a thread of its own: a browser test may have left an event loop running in this one.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        cut_off, served = pool.submit(asyncio.run, scenario()).result()
    assert all(status == 200 and seconds < 2 for status, seconds in served), served
    assert all(HEADER_TIMEOUT - 1 <= seconds <= HEADER_TIMEOUT + 5 for seconds in cut_off), sorted(cut_off)


def test_probes_do_not_wait_behind_a_busy_page_server(stack):
    with page_server_held(stack["web"]):
        status, body, seconds = https_get(stack, "/healthz")
        assert status == 200, body
        assert seconds < 0.5
        assert b'"web": "ok"' in body  # the page server is busy, not gone
        with pytest.raises(TimeoutError):  # while pages wait for the page server
            https_get(stack, "/api/v1/ping/", timeout=1)


def test_one_address_gets_only_so_many_requests_in_flight(stack):
    with page_server_held(stack["web"]):
        connections = []
        for _ in range(CONNECTIONS_PER_ADDRESS + 8):
            connection = http.client.HTTPSConnection(
                "127.0.0.1", stack["https"], timeout=2, context=stack["tls"], source_address=("127.0.0.3", 0)
            )
            connection.request("GET", "/api/v1/ping/")
            connections.append(connection)
        time.sleep(1.5)  # nginx answers at once what it refuses; the rest wait for the page server
        answered, _, _ = select.select([connection.sock for connection in connections], [], [], 0)
        statuses = [connection.getresponse().status for connection in connections if connection.sock in answered]
        for connection in connections:
            connection.close()
        assert statuses == [429] * 8
        # Another address is not limited by the first one's requests.
        status, _, _ = https_get(stack, "/healthz", source="127.0.0.4")
        assert status == 200
