"""HTTPS: `logwell serve` given a certificate and key (`[tls]` or --tls-cert/--tls-key) speaks TLS
only; boto3, the AWS CLI and the logwell CLI reach it when told to trust a self-signed certificate
(`verify=`, `--ca-bundle`, AWS_CA_BUNDLE) and refuse it otherwise; live tail streams over it.
"""
import http.client
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import boto3
import botocore.config
import pytest
from botocore.exceptions import SSLError

from conftest import Server, logwell_bin


@pytest.fixture
def certificate(tmp_path):
    """A self-signed certificate for localhost and 127.0.0.1, made by openssl."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-days", "2", "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         # A leaf, not a CA: rustls (the logwell CLI) refuses a CA certificate as a server's.
         "-addext", "basicConstraints=critical,CA:FALSE"],
        check=True, capture_output=True)
    return cert, key


def https_client(server, verify, **config):
    return boto3.client(
        "logs", endpoint_url=server.endpoint, region_name="us-east-1", verify=verify,
        aws_access_key_id="testing", aws_secret_access_key="testing",
        config=botocore.config.Config(retries={"total_max_attempts": 1}, **config))


def start_https(tmp_path, certificate, via_flags=False):
    cert, key = certificate
    if via_flags:
        server = Server(tmp_path / "data", "", args=("--tls-cert", str(cert), "--tls-key", str(key)))
    else:
        server = Server(tmp_path / "data", f'[tls]\ncert_file = "{cert}"\nkey_file = "{key}"\n')
    server.endpoint = f"https://localhost:{server.port}"
    return server.start()


def test_boto3_and_live_tail_over_https_with_a_self_signed_certificate(tmp_path, certificate):
    cert, _ = certificate
    server = start_https(tmp_path, certificate)
    try:
        logs = https_client(server, str(cert))
        logs.create_log_group(logGroupName="/tls/app")
        logs.create_log_stream(logGroupName="/tls/app", logStreamName="s")
        now = int(time.time() * 1000)
        logs.put_log_events(logGroupName="/tls/app", logStreamName="s",
                            logEvents=[{"timestamp": now, "message": f"secure {i}"} for i in range(3)])
        got = logs.get_log_events(logGroupName="/tls/app", logStreamName="s", startFromHead=True)
        assert [e["message"] for e in got["events"]] == ["secure 0", "secure 1", "secure 2"]

        # The system's roots do not know the certificate: the client refuses the server.
        with pytest.raises(SSLError):
            https_client(server, True).describe_log_groups()
        # Plain HTTP to the TLS port gets no API answer (a TLS alert, then the connection closes).
        with pytest.raises((urllib.error.URLError, OSError, http.client.HTTPException)):
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}/", data=b"{}", timeout=5).read()

        # Live tail's event stream over TLS.
        tail = https_client(server, str(cert), inject_host_prefix=False).start_live_tail(
            logGroupIdentifiers=["arn:aws:logs:us-east-1:000000000000:log-group:/tls/app"])
        stream = tail["responseStream"]
        first = next(iter(stream))
        assert "sessionStart" in first
        logs.put_log_events(logGroupName="/tls/app", logStreamName="s",
                            logEvents=[{"timestamp": int(time.time() * 1000), "message": "tailed over tls"}])
        seen = []
        for event in stream:
            seen += [e["message"] for e in event.get("sessionUpdate", {}).get("sessionResults", [])]
            if seen:
                break
        stream.close()
        assert seen == ["tailed over tls"]
    finally:
        server.kill9()


def test_aws_cli_and_logwell_cli_trust_a_ca_bundle(tmp_path, certificate):
    cert, _ = certificate
    server = start_https(tmp_path, certificate, via_flags=True)
    try:
        env = dict(os.environ, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                   AWS_DEFAULT_REGION="us-east-1", AWS_PAGER="")
        env.pop("AWS_CA_BUNDLE", None)
        aws = [str(Path(sys.executable).parent / "aws"), "--endpoint-url", server.endpoint, "--output", "json"]
        ok = subprocess.run([*aws, "--ca-bundle", str(cert), "logs", "create-log-group", "--log-group-name", "/tls/cli"],
                            capture_output=True, text=True, env=env)
        assert ok.returncode == 0, ok.stderr
        refused = subprocess.run([*aws, "logs", "describe-log-groups"], capture_output=True, text=True, env=env)
        assert refused.returncode != 0 and "SSL" in refused.stderr

        def logwell(*args, **extra_env):
            return subprocess.run([logwell_bin(), *args, "--endpoint", server.endpoint], capture_output=True,
                                  text=True, env=dict(env, **extra_env), timeout=60)

        listed = logwell("groups", "--ca-bundle", str(cert))
        assert listed.returncode == 0 and "/tls/cli" in listed.stdout, listed.stderr
        listed = logwell("groups", AWS_CA_BUNDLE=str(cert))
        assert listed.returncode == 0 and "/tls/cli" in listed.stdout, listed.stderr
        refused = logwell("groups")
        assert refused.returncode != 0 and "certificate" in refused.stderr.lower(), refused.stderr
        missing = logwell("groups", "--ca-bundle", str(tmp_path / "nope.pem"))
        assert missing.returncode != 0 and "nope.pem" in missing.stderr
    finally:
        server.kill9()


def test_a_bad_certificate_stops_start_up(tmp_path, certificate):
    cert, key = certificate
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    for config in (f'[tls]\ncert_file = "{garbage}"\nkey_file = "{key}"\n',
                   f'[tls]\ncert_file = "{cert}"\n',
                   f'[tls]\ncert_file = "{key}"\nkey_file = "{cert}"\n'):
        server = Server(tmp_path / "data", config)
        with pytest.raises(RuntimeError, match="logwell exited"):
            server.start(timeout=20)
