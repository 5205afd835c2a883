"""Encryption at rest, on by default: after ingest and flush no byte under the data directory (WAL,
segments, catalog) holds a message's text; the keyring is created 0600; DuckDB cannot read a
segment; everything reads back after a restart, after `logwell rotate-keys` (a new master key,
data keys wrapped again, nothing rewritten) and after compaction; a data directory whose keyring
is gone refuses to start instead of making a new one; `encrypt = false` writes plain Parquet.
"""
import json
import os
import shutil
import stat
import subprocess
import time
import uuid

import duckdb
import pytest

from conftest import Server, logwell_bin

FAST = """
[storage]
flush_age = 1
maintenance_interval = 1
"""


def all_bytes(root):
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = os.path.join(dirpath, f)
            with open(p, "rb") as fh:
                out[p] = fh.read()
    return out


def segments(root):
    return [p for p in all_bytes(root) if p.endswith(".parquet")]


def wait_for(pred, timeout=30, what="condition"):
    deadline = time.time() + timeout
    while not pred():
        assert time.time() < deadline, what
        time.sleep(0.1)


def put(logs, group, stream, messages):
    now = int(time.time() * 1000)
    logs.put_log_events(logGroupName=group, logStreamName=stream,
                        logEvents=[{"timestamp": now + i, "message": m} for i, m in enumerate(messages)])


def read_all(logs, group, stream):
    got = logs.get_log_events(logGroupName=group, logStreamName=stream, startFromHead=True)["events"]
    return [e["message"] for e in got]


def insights(logs, group, query):
    q = logs.start_query(logGroupName=group, startTime=0, endTime=int(time.time()) + 60, queryString=query)["queryId"]
    while (r := logs.get_query_results(queryId=q))["status"] in ("Scheduled", "Running"):
        time.sleep(0.05)
    assert r["status"] == "Complete", r
    return [{f["field"]: f["value"] for f in row} for row in r["results"]]


def test_nothing_plain_on_disk_and_everything_reads_back(tmp_path):
    data = tmp_path / "data"
    secret = f"card-holder-{uuid.uuid4().hex}"
    messages = [f"payment by {secret} #{i}" for i in range(50)] + [json.dumps({"user": secret, "n": 1})]
    server = Server(data, FAST).start()
    try:
        logs = server.client()
        logs.create_log_group(logGroupName="/enc/app")
        logs.create_log_stream(logGroupName="/enc/app", logStreamName="s")
        put(logs, "/enc/app", "s", messages)
        keyring = data / "keyring"
        assert stat.S_IMODE(keyring.stat().st_mode) == 0o600
        # The WAL holds the events before any flush: sealed.
        for path, content in all_bytes(data).items():
            assert secret.encode() not in content, f"{path} holds the plaintext"
        wait_for(lambda: segments(data), what="a segment")
        for path, content in all_bytes(data).items():
            assert secret.encode() not in content, f"{path} holds the plaintext"
            assert b"payment by" not in content, path
        with pytest.raises(duckdb.Error):
            duckdb.sql(f"SELECT * FROM read_parquet('{segments(data)[0]}')").fetchall()
        assert read_all(logs, "/enc/app", "s") == messages
        assert len(insights(logs, "/enc/app", f"filter @message like /{secret}/ | stats count(*)")) == 1
        assert insights(logs, "/enc/app", "filter ispresent(user) | fields user")[0]["user"] == secret

        # Restart, then rotate the master key offline: everything reads back.
        server.stop()
        server.start()
        logs = server.client()
        assert read_all(logs, "/enc/app", "s") == messages
        put(logs, "/enc/app", "s", ["after restart"])
        server.stop()
        out = subprocess.run([logwell_bin(), "rotate-keys", "--data-dir", str(data)], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert "1 data keys wrapped again" in out.stdout
        assert len(keyring.read_text().split("\n")) == 3  # two keys and the final newline
        server.start()
        logs = server.client()
        assert read_all(logs, "/enc/app", "s") == messages + ["after restart"]
        logs.create_log_group(logGroupName="/enc/new")
        logs.create_log_stream(logGroupName="/enc/new", logStreamName="s")
        put(logs, "/enc/new", "s", [f"new {secret}"])
        assert read_all(logs, "/enc/new", "s") == [f"new {secret}"]
        fc = insights(logs, "/enc/app", f"filter @message like /{secret}/ | stats count(*) as n")
        assert fc[0]["n"] == str(len(messages))

        # Without its keyring the data directory does not start (and no new keyring is left).
        server.stop()
        shutil.move(str(keyring), str(tmp_path / "keyring.saved"))
        with pytest.raises(RuntimeError, match="logwell exited"):
            server.start(timeout=20)
        assert "is missing: restore the keyring" in server.log_path.read_text()
        assert not keyring.exists()
        shutil.move(str(tmp_path / "keyring.saved"), str(keyring))
        server.start()
        assert read_all(server.client(), "/enc/app", "s") == messages + ["after restart"]
    finally:
        server.kill9()


def test_encrypt_false_writes_plain_parquet(tmp_path):
    data = tmp_path / "data"
    server = Server(data, FAST + "encrypt = false\n").start()
    try:
        logs = server.client()
        logs.create_log_group(logGroupName="/plain")
        logs.create_log_stream(logGroupName="/plain", logStreamName="s")
        put(logs, "/plain", "s", ["visible text"])
        wait_for(lambda: segments(data), what="a segment")
        rows = duckdb.sql(f"SELECT message FROM read_parquet('{segments(data)[0]}')").fetchall()
        assert rows == [("visible text",)]
        assert not (data / "keyring").exists()

        # Encryption turned on later: the existing group gets a data key; its new segments and
        # WAL are encrypted, the old plain segment still reads.
        server.stop()
        plain = set(segments(data))
        server = Server(data, FAST).start()
        logs = server.client()
        put(logs, "/plain", "s", ["secret later"])
        wait_for(lambda: set(segments(data)) - plain, what="a new segment")
        for path, content in all_bytes(data).items():
            assert b"secret later" not in content, path
        with pytest.raises(duckdb.Error):
            duckdb.sql(f"SELECT * FROM read_parquet('{(set(segments(data)) - plain).pop()}')").fetchall()
        assert read_all(logs, "/plain", "s") == ["visible text", "secret later"]
    finally:
        server.kill9()
