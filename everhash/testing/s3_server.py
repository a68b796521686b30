"""A real S3 API on loopback: moto's server over HTTP on 127.0.0.1, with one bucket.

Usable from pytest and from plain scripts (benchmarks, Celery workers in subprocesses)::

    with S3Server() as s3:
        env = {**os.environ, **s3.env}          # EVERHASH_S3_* for a subprocess
        settings_dict = s3.django_settings()    # AWS_* + STORAGES for this process

moto keeps its state in this process (its backends are module globals), so `stop()` then
`start()` brings the same bucket and objects back on the same port: an outage and a recovery.
moto neither checks the signature nor the expiry of presigned URLs (checked with moto 5.2.5).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from moto.server import ThreadedMotoServer

from everhash.testing.processes import ROOT, free_port

REGION = "eu-west-1"
ACCESS_KEY_ID = "AKIAEVERHASHTEST0000"
SECRET_ACCESS_KEY = "everhash-test-secret"  # noqa: S105  (moto accepts any key)


class S3Server:
    """moto's S3 on http://127.0.0.1:<free port> with a fresh bucket of its own."""

    def __init__(self, *, bucket: str | None = None, port: int | None = None, url_lifetime: int = 3600) -> None:
        self.port = port or free_port()
        self.bucket = bucket or f"everhash-test-{secrets.token_hex(6)}"
        self.url_lifetime = url_lifetime
        self._server: ThreadedMotoServer | None = None
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request otherwise

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> S3Server:
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        client = self.client()
        try:
            client.head_bucket(Bucket=self.bucket)  # restarted: moto kept the bucket and its objects
        except client.exceptions.ClientError:
            client.create_bucket(Bucket=self.bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def client(self):
        """A plain boto3 client on the server, for checking what is stored (head_object...)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET_ACCESS_KEY,
            config=Config(signature_version="s3v4", retries={"mode": "standard", "max_attempts": 1}),
        )

    def object_keys(self, prefix: str = "") -> set[str]:
        paginator = self.client().get_paginator("list_objects_v2")
        return {
            obj["Key"]
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix)
            for obj in page.get("Contents", ())
        }

    @property
    def env(self) -> dict[str, str]:
        """The environment that points everhash's settings at this server (for subprocesses)."""
        return {
            "EVERHASH_S3_BUCKET": self.bucket,
            "EVERHASH_S3_ENDPOINT_URL": self.endpoint_url,
            "EVERHASH_S3_REGION": REGION,
            "EVERHASH_S3_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "EVERHASH_S3_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "EVERHASH_S3_URL_LIFETIME": str(self.url_lifetime),
            "EVERHASH_S3_MAX_ATTEMPTS": "1",  # an outage shows at once instead of after retries
            "EVERHASH_S3_CONNECT_TIMEOUT": "2",
        }

    def django_settings(self, **env: str) -> dict:
        """What everhash/settings.py makes of `env` (plus overrides): the AWS_* settings and the
        default storage ("STORAGES_DEFAULT"), to apply in this process (pytest's `settings`)."""
        values = settings_from_env({**self.env, **env})
        found = {name: value for name, value in values.items() if name.startswith("AWS_")}
        found["STORAGES_DEFAULT"] = values["STORAGES"]["default"]
        return found


def settings_from_env(env: dict[str, str]) -> dict:
    """Run everhash/settings.py with `env` added to the environment; its module globals."""
    import runpy

    path = ROOT / "everhash" / "settings.py"
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        return runpy.run_path(str(path))
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


SUBPROCESS = """
import json, sys
from everhash.testing.s3_server import S3Server
server = S3Server(bucket=sys.argv[1]).start()
print(json.dumps(server.env), flush=True)
sys.stdin.read()  # until the parent closes the pipe, or dies
server.stop()
"""


@contextlib.contextmanager
def s3_server_process(folder: Path, *, bucket: str) -> Iterator[tuple[dict[str, str], int]]:
    """An S3Server in a process of its own (its CPU counted apart from the caller's, its own GIL):
    yields (its EVERHASH_S3_* variables, its pid). It stops when the pipe to it closes."""
    (folder / "moto-tmp").mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TMPDIR": str(folder / "moto-tmp")}  # moto spools large objects to files
    with (folder / "moto.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", SUBPROCESS, bucket],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            start_new_session=True,
        )
    try:
        ready, _, _ = select.select([process.stdout], [], [], 60)
        line = process.stdout.readline() if ready else b""
        if not line:
            raise RuntimeError(f"moto did not start:\n{(folder / 'moto.log').read_text(errors='replace')[-3000:]}")
        yield json.loads(line), process.pid
    finally:
        with contextlib.suppress(OSError):
            process.stdin.close()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
