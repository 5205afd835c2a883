"""Shared fixtures for the end-to-end suite: a real logwell server process, real clients.

The server binary comes from $LOGWELL_BIN (default: target/debug/logwell under $CARGO_TARGET_DIR
or the repository). Each test gets its own data directory and port.
"""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
import botocore.config
import pytest

ROOT = Path(__file__).resolve().parent.parent


def logwell_bin() -> str:
    if os.environ.get("LOGWELL_BIN"):
        return os.environ["LOGWELL_BIN"]
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return str(target / "debug" / "logwell")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A logwell server process that can be stopped, killed and restarted on the same data."""

    def __init__(self, data_dir: Path, config_text: str = "", port: int | None = None, args: tuple = ()):
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.args = list(args)
        self.config_path = self.data_dir.parent / f"{self.data_dir.name}.toml"
        self.config_path.write_text(config_text)
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> "Server":
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [logwell_bin(), "serve", "--data-dir", str(self.data_dir), "--listen", f"127.0.0.1:{self.port}",
             "--config", str(self.config_path), *self.args],
            stdout=log, stderr=log,
        )
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"logwell exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"logwell did not start:\n{self.log()}")

    def stop(self, timeout: float = 60.0) -> int:
        """Graceful stop (SIGTERM): the server flushes and exits 0."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout)
        return self.proc.returncode if self.proc else 0

    def kill9(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def restart(self) -> "Server":
        self.stop()
        return self.start()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except OSError:
            return ""

    def client(self, **config):
        return boto3.client(
            "logs", endpoint_url=self.endpoint, region_name="us-east-1",
            aws_access_key_id="testing", aws_secret_access_key="testing",
            # One attempt, no retries: botocore's `max_attempts` counts retries *after* the first try, and
            # a silent retry of a put whose reply was lost would store its events twice.
            config=botocore.config.Config(retries={"total_max_attempts": 1}, **config),
        )


def moto_server(log_path: Path, service: str, ready) -> tuple:
    """Starts moto_server (S3, KMS, ... on one port) and waits until `ready(client)` succeeds
    with a client of `service`; returns (process, endpoint, client)."""
    port = free_port()
    log = open(log_path, "wb")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=log)
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secretsecret")
    deadline = time.time() + 30
    while True:
        try:
            ready(client)
            return proc, endpoint, client
        except Exception:
            if time.time() > deadline:
                proc.kill()
                raise
            time.sleep(0.2)


# Fast flushes and maintenance so tests exercise segments, not just the memtable.
FAST_CONFIG = """
[storage]
flush_age = 1
maintenance_interval = 1
"""


def bucket_files(root: Path) -> list:
    """The objects written to a local bucket, oldest first. object_store's local store writes an
    object to `<name>#<n>` and renames it into place, so a listing taken mid-write skips those."""
    files = [p for p in root.rglob("*") if p.is_file() and "#" not in p.name]
    return sorted(files, key=lambda p: p.stat().st_mtime_ns)


@pytest.fixture
def tmp_data(tmp_path):
    return tmp_path / "data"


@pytest.fixture
def server(tmp_data):
    s = Server(tmp_data, FAST_CONFIG).start()
    yield s
    s.kill9()


@pytest.fixture
def logs(server):
    return server.client()


def aws_cli(endpoint: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Runs the AWS CLI (v1, from the test virtualenv) against logwell."""
    env = dict(os.environ, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
               AWS_DEFAULT_REGION="us-east-1", AWS_PAGER="")
    aws = str(Path(sys.executable).parent / "aws")
    return subprocess.run([aws, "--endpoint-url", endpoint, "--output", "json", *args],
                          capture_output=True, text=True, env=env, check=check)
