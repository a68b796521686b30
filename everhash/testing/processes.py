"""The loopback process harness: free ports, background processes, redis-server, gunicorn, MariaDB.

Usable from pytest fixtures (everhash/testing/fixtures.py) and from plain scripts (bench/) alike, so
nothing here calls pytest: a failure raises RuntimeError (or TimeoutError) with the process's log.
Every server listens on 127.0.0.1 only. The MariaDB server itself is started by .ci/with-mariadb;
this module makes and drops databases on it.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
GUNICORN = Path(sys.executable).with_name("gunicorn")


class LoopbackCA:
    """A throwaway certificate authority and one certificate for 127.0.0.1, localhost and 127.0.0.2.

    `ca_path` is the PEM to trust (EVERHASH_CA_BUNDLE, twython's `verify`), written into `folder`;
    `server_context()` is an ssl.SSLContext for a loopback HTTPS server (FakeXAPI, MediaServer)."""

    def __init__(self, folder: Path) -> None:
        import trustme

        self.ca = trustme.CA()
        self._cert = self.ca.issue_cert("127.0.0.1", "localhost", "127.0.0.2")
        self.ca_path = str(folder / "ca.pem")
        self.ca.cert_pem.write_to_path(self.ca_path)

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._cert.configure_cert(context)
        return context


def free_port() -> int:
    """A TCP port of 127.0.0.1 free right now (another process may still take it before we bind it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition: Callable[[], bool], *, timeout: float, what: Callable[[], str]) -> None:
    """Poll `condition` every 0.1 s; TimeoutError saying `what()` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"Timed out after {timeout} s waiting: {what()}")
        time.sleep(0.1)


def inside_one_window(seconds: int, *, margin: float = 5.0) -> None:
    """Wait out the current fixed window of ``seconds`` (rate limits, per-minute throttles) when it ends
    within ``margin`` seconds, so that a test's requests to a server in another process (where
    still_clock cannot hold the time) all count in one window."""
    left = seconds - time.time() % seconds
    if left < margin:
        time.sleep(left + 0.1)


def stop(*processes: subprocess.Popen, grace: float = 15) -> None:
    """SIGTERM (a worker's warm shutdown) to all, then SIGKILL to the process group (pool children
    too) of any still running after `grace` seconds. Processes must run in a session of their own."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


class Service:
    """A background process in a session of its own (so its children can be killed with it), its
    output in a log file; `stop()` sends SIGTERM, then SIGKILL to the session after `grace` seconds."""

    def __init__(self, name: str, command: list[str], *, env: dict[str, str], log: Path, grace: float = 15) -> None:
        self.name, self.log, self.grace = name, log, grace
        with log.open("wb") as output:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def check(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.text()[-3000:]}")

    def wait_for_line(self, fragment: str, *, timeout: float = 30) -> None:
        """Until `fragment` is in the log; RuntimeError if the process exits first."""

        def seen() -> bool:
            self.check()
            return fragment in self.text()

        wait_for(seen, timeout=timeout, what=lambda: f"{fragment!r} in the log of {self.name}:\n{self.text()[-3000:]}")

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        stop(self.process, grace=self.grace)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # pool children left behind, if any


def run_python(env: dict[str, str], code: str, *args: str, timeout: float = 120) -> str:
    """Run `python -c code args...` from the repository root with `env`; its standard output."""
    return _run(env, ["-c", code, *args], timeout)


def manage(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    """Run `manage.py args...` as cron or an operator would, with `env`; its standard output."""
    return _run(env, ["manage.py", *args], timeout)


def _run(env: dict[str, str], args: list[str], timeout: float) -> str:
    command = [sys.executable, *args]
    return subprocess.run(
        command, cwd=ROOT, env=env, check=True, timeout=timeout, capture_output=True, text=True
    ).stdout


def process_environment(folder: Path, *, fake_x_url: str, ca_path: str, bearer_token: str) -> dict[str, str]:
    """The environment of a manage.py (or worker) subprocess as cron would run it: its own database
    and media under `folder` (or, on the MariaDB run, the inherited DB_* database), the fake X API,
    emails written to files."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "everhash.settings",
        "EVERHASH_VAR_DIR": str(folder),
        "EVERHASH_SQLITE_PATH": str(folder / "db.sqlite3"),
        "MEDIA_ROOT": str(folder / "media"),
        "EVERHASH_X_API_URL": fake_x_url,
        "EVERHASH_X_BEARER_TOKEN": bearer_token,
        "EVERHASH_MASTODON_INSTANCES": "",  # nothing leaves the machine
        "EVERHASH_BLUESKY_HANDLE": "",
        "EVERHASH_CA_BUNDLE": ca_path,
        "EVERHASH_MEDIA_HOSTS": "127.0.0.1",
        "EVERHASH_ALLOW_PRIVATE_ADDRESSES": "127.0.0.1",
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(folder / "mail"),
    }


def production_environment(folder: Path) -> dict[str, str]:
    """Production settings (DEBUG off, a SECRET_KEY, ALLOWED_HOSTS=127.0.0.1) on a throwaway SQLite
    database, media, static files and var dir in `folder`, for gunicorn or manage.py subprocesses."""
    ignored = {"SECRET_KEY", "ALLOWED_HOSTS", "DEBUG", "DJANGO_ALLOW_ASYNC_UNSAFE", "EVERHASH_LOG_FORMAT", "DB_NAME"}
    return {
        **{name: value for name, value in os.environ.items() if name not in ignored},
        "DJANGO_SETTINGS_MODULE": "everhash.settings",
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1",
        "EVERHASH_VAR_DIR": str(folder),
        "EVERHASH_SQLITE_PATH": str(folder / "db.sqlite3"),
        "MEDIA_ROOT": str(folder / "media"),
        "STATIC_ROOT": str(folder / "static"),
    }


@contextlib.contextmanager
def redis_server(folder: Path, *, password: str | None = None) -> Iterator[tuple[str, Service]]:
    """A private redis-server on a free loopback port, no persistence; yields (its URL, the Service).

    Ready when the server on that port reports our process id (a free port may be taken by someone
    else before the server binds it: then another port is tried, three times)."""
    import redis

    server = None
    for attempt in range(3):
        port = free_port()
        data = folder / f"redis-{attempt}"
        data.mkdir(parents=True, exist_ok=True)
        command = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        command += ["--dir", str(data), *(["--requirepass", password] if password else [])]
        server = Service("redis-server", command, env=dict(os.environ), log=data / "log")
        client = redis.Redis(host="127.0.0.1", port=port, password=password, socket_timeout=1)

        def ours(server=server, client=client) -> bool:
            if server.process.poll() is not None:
                return True  # it could not start: try another port
            try:
                return client.info("server")["process_id"] == server.pid
            except redis.RedisError:
                return False  # not listening yet (or another server on that port, refusing the password)

        try:
            wait_for(ours, timeout=10, what=server.text)
            if server.process.poll() is None:
                auth = f":{password}@" if password else ""
                yield f"redis://{auth}127.0.0.1:{port}/0", server
                return
        finally:
            client.close()
            server.stop()
    raise RuntimeError(f"redis-server did not start:\n{server.text() if server else ''}")


def http_get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """One plain GET to 127.0.0.1:port, one connection; (status, body)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


class Gunicorn:
    """`with Gunicorn(env, args, log=...) as server:` our WSGI app under gunicorn on 127.0.0.1:server.port.

    `args` are gunicorn's options (its config); a free port is chosen. Ready when `ready_path`
    answers at all (any status); terminated, then killed if it lingers, on exit."""

    def __init__(
        self,
        env: dict[str, str],
        args: list[str],
        *,
        log: Path | None = None,
        ready_path: str = "/healthz",
        bind_variable: str | None = None,
    ) -> None:
        """`bind_variable`: pass the address in that environment variable (a config file reads it,
        as everhash/gunicorn_conf.py reads GUNICORN_BIND) instead of --bind."""
        self.port = free_port()
        address = f"127.0.0.1:{self.port}"
        self.env = {**env, bind_variable: address} if bind_variable else env
        self.args = args if bind_variable else [*args, f"--bind={address}"]
        self.log, self.ready_path = log, ready_path
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Gunicorn:
        output = self.log.open("wb") if self.log else None
        try:
            self.process = subprocess.Popen(
                [str(GUNICORN), *self.args, "everhash.wsgi"],
                cwd=ROOT,
                env=self.env,
                stdout=output,
                stderr=subprocess.STDOUT if output else None,
            )
        finally:
            if output:
                output.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                http_get(self.port, self.ready_path)
                return self
            except OSError:
                time.sleep(0.1)
        self.__exit__(None, None, None)
        log = self.log.read_text(errors="replace")[-3000:] if self.log else ""
        raise RuntimeError(f"gunicorn did not answer within 30 s:\n{log}")

    def __exit__(self, *exc_info: object) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


# --- MariaDB (the server of .ci/with-mariadb, or any MySQL/MariaDB a DATABASES entry names) -----


def mariadb_connection(*, user: str, password: str, host: str, port: str | int = "", database: str | None = None):
    """An autocommit MySQLdb connection; `host` may be a socket path (as .ci/with-mariadb gives)."""
    import MySQLdb

    kwargs: dict = {"user": user, "password": password, "charset": "utf8mb4"}
    if host.startswith("/"):
        kwargs["unix_socket"] = host
    else:
        kwargs.update(host=host, port=int(port or 3306))
    if database:
        kwargs["database"] = database
    connection = MySQLdb.connect(**kwargs)
    connection.autocommit(True)  # every poll sees the latest commits
    return connection


def create_database(connection, name: str) -> None:
    """A new empty database, as docs/deploy.rst tells an operator to create it."""
    with connection.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
        cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")


def drop_database(connection, name: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")


@contextlib.contextmanager
def new_mariadb_database(database: dict, prefix: str = "everhash_new_") -> Iterator[str]:
    """A fresh database next to Django's `database` (a DATABASES entry), dropped afterwards; its name."""
    name = f"{prefix}{secrets.token_hex(4)}"
    connection = mariadb_connection(
        user=database["USER"], password=database["PASSWORD"], host=database["HOST"], port=database["PORT"]
    )
    create_database(connection, name)
    try:
        yield name
    finally:
        drop_database(connection, name)
        connection.close()


# --- nginx (Debian's nginx-light), in front of gunicorn as docs/deploy.rst configures it ---------

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
NGINX_MAIN = """
{user}
worker_processes 1;
daemon off;
pid {folder}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {folder}/client_body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    include {folder}/site.conf;
}}
"""


@contextlib.contextmanager
def nginx(folder: Path, site: str, *, ports: list[int]) -> Iterator[Service]:
    """nginx in the foreground with `site` (a sites-available file) included in a minimal http
    block, its temporary files and log in `folder`; ready when each of `ports` accepts connections."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "site.conf").write_text(site)
    # As root the workers would switch to "nobody", who cannot read the test's folder.
    user = f"user {os.environ.get('USER', 'root')};" if os.geteuid() == 0 else ""
    (folder / "nginx.conf").write_text(NGINX_MAIN.format(folder=folder, user=user))
    command = [NGINX, "-p", str(folder), "-c", str(folder / "nginx.conf"), "-e", str(folder / "error.log")]
    with Service("nginx", command, env=dict(os.environ), log=folder / "nginx.log", grace=5) as server:

        def listening() -> bool:
            server.check()
            for port in ports:
                with socket.socket() as sock:
                    if sock.connect_ex(("127.0.0.1", port)):
                        return False
            return True

        wait_for(listening, timeout=10, what=lambda: (folder / "error.log").read_text(errors="replace")[-3000:])
        yield server
