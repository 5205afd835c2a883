"""Acknowledged means durable: SIGKILL the server at random moments while clients write, restart,
and find every acknowledged event exactly once. Run on the local store and on an S3 server."""
import collections
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import boto3
import pytest

from conftest import FAST_CONFIG, Server, free_port, moto_server

GROUP = "/crash/test"


class Writer(threading.Thread):
    """Puts batches of uniquely numbered events; remembers which ones were acknowledged."""

    def __init__(self, server: Server, stream: str, batch: int):
        super().__init__(daemon=True)
        self.server, self.stream, self.batch = server, stream, batch
        self.acked: list[str] = []
        self.sent = 0
        self.stop = threading.Event()

    def run(self):
        client = None
        n = 0
        while not self.stop.is_set():
            if client is None:
                client = self.server.client()
            now = int(time.time() * 1000)
            ids = [f"{self.stream}-{n + i}" for i in range(self.batch)]
            n += self.batch
            events = [{"timestamp": now, "message": f"id={i} payload={'x' * 60}"} for i in ids]
            try:
                client.put_log_events(logGroupName=GROUP, logStreamName=self.stream, logEvents=events)
                self.acked.extend(ids)
            except Exception:
                # Not acknowledged: the server may or may not have it; never resend the same ids.
                client = None
                time.sleep(0.05)


def all_ids(client) -> collections.Counter:
    counts = collections.Counter()
    for page in client.get_paginator("filter_log_events").paginate(logGroupName=GROUP):
        for e in page["events"]:
            counts[e["message"].split(" ", 1)[0][3:]] += 1
    return counts


def crash_cycle(server: Server, kills: int, writers: int = 3, batch: int = 200, uptime=(0.3, 2.5)):
    c = server.client()
    c.create_log_group(logGroupName=GROUP)
    streams = [f"w{i}" for i in range(writers)]
    for s in streams:
        c.create_log_stream(logGroupName=GROUP, logStreamName=s)
    ws = [Writer(server, s, batch) for s in streams]
    for w in ws:
        w.start()
    rng = random.Random(42)
    for _ in range(kills):
        time.sleep(rng.uniform(*uptime))
        server.kill9()
        time.sleep(rng.uniform(0.0, 0.3))
        server.start()
    time.sleep(1.0)
    for w in ws:
        w.stop.set()
    for w in ws:
        w.join(30)
    acked = [i for w in ws for i in w.acked]
    assert len(acked) > 1000, "writers made too little progress to prove anything"

    # Every acknowledged event is there exactly once, before and after a clean restart.
    for attempt in range(2):
        counts = all_ids(server.client())
        missing = [i for i in acked if counts[i] == 0]
        doubled = [i for i, n in counts.items() if n > 1]
        assert not missing, f"{len(missing)} acknowledged events lost, e.g. {missing[:5]}"
        assert not doubled, f"{len(doubled)} events stored twice, e.g. {doubled[:5]}"
        if attempt == 0:
            server.restart()
    return acked


def test_sigkill_loses_no_acknowledged_event(tmp_path):
    server = Server(tmp_path / "data", FAST_CONFIG).start()
    try:
        crash_cycle(server, kills=6)
        # The crash cycle flushed segments along the way; the store is Parquet, not only WAL.
        assert list((tmp_path / "data" / "store" / "segments").rglob("*.parquet"))
    finally:
        server.kill9()


@pytest.fixture
def s3_server(tmp_path):
    """moto_server as an S3-compatible store (it enforces conditional writes like AWS)."""
    proc, endpoint, s3 = moto_server(tmp_path / "moto.log", "s3", lambda c: c.create_bucket(Bucket="logwell-test"))
    yield endpoint, s3
    proc.kill()
    proc.wait()


def s3_config(endpoint: str, keyring=None) -> str:
    # Nodes that take over one another's store share a keyring (as they would share a KMS key).
    shared = f'keyring = "{keyring}"\n' if keyring else ""
    return FAST_CONFIG + shared + f"""
[storage.object_store]
kind = "s3"
bucket = "logwell-test"
endpoint = "{endpoint}"
access_key_id = "AKIDEXAMPLE"
secret_access_key = "secretsecret"
prefix = "cluster-a"
"""


# Tiny segments flushed and merged all the time, so that kills land inside flush and compaction.
CHURN_CONFIG = """
[storage]
flush_bytes = 131072
flush_age = 0.2
maintenance_interval = 0.2
recompress_after = 0
orphan_grace = 0
"""


class QueryLoop(threading.Thread):
    """Runs Insights queries and FilterLogEvents against the server until stopped; keeps any answer
    that is an error other than the server being down or restarted."""

    TRANSIENT = ("ResourceNotFoundException", "ThrottlingException")

    def __init__(self, server: Server):
        super().__init__(daemon=True)
        self.server = server
        self.stop = threading.Event()
        self.errors: list[str] = []
        self.answered = 0

    def run(self):
        from botocore.exceptions import ClientError
        while not self.stop.is_set():
            try:
                c = self.server.client()
                now = int(time.time())
                qid = c.start_query(logGroupName=GROUP, startTime=now - 600, endTime=now + 60,
                                    queryString="stats count(*) as n by @logStream")["queryId"]
                while (r := c.get_query_results(queryId=qid))["status"] in ("Scheduled", "Running"):
                    time.sleep(0.05)
                if r["status"] != "Complete":
                    self.errors.append(f"query ended {r['status']}")
                c.filter_log_events(logGroupName=GROUP, limit=500)
                self.answered += 1
            except ClientError as e:
                if e.response["Error"]["Code"] not in self.TRANSIENT:
                    self.errors.append(str(e))
            except Exception:
                time.sleep(0.05)  # the server is down between a kill and its restart


def test_fifty_sigkills_inside_flush_and_compaction_with_concurrent_queries(tmp_path):
    server = Server(tmp_path / "data", CHURN_CONFIG).start()
    queries = QueryLoop(server)
    try:
        queries.start()
        crash_cycle(server, kills=50, uptime=(0.1, 0.9))
        queries.stop.set()
        queries.join(30)
        assert queries.answered > 10
        assert queries.errors == [], queries.errors[:5]
    finally:
        server.kill9()


def test_s3_store_ingest_restart_read_and_sigkill(tmp_path, s3_server):
    endpoint, s3 = s3_server
    server = Server(tmp_path / "data", s3_config(endpoint)).start()
    try:
        crash_cycle(server, kills=3)
        keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket="logwell-test")
                for o in page.get("Contents", [])]
        assert any(k.startswith("cluster-a/segments/") and k.endswith(".parquet") for k in keys), keys[:20]
        assert any(k.startswith("cluster-a/catalog/manifest-") for k in keys), keys[:20]
        # Segments live in S3, not in the local data directory.
        assert not (tmp_path / "data" / "store").exists()
    finally:
        server.kill9()


def test_wiping_local_wal_after_clean_stop_keeps_everything_on_s3(tmp_path, s3_server):
    """After a clean stop everything is in S3: a fresh node with an empty disk serves it all."""
    endpoint, _ = s3_server
    first = Server(tmp_path / "node1", s3_config(endpoint, tmp_path / "keyring")).start()
    c = first.client()
    c.create_log_group(logGroupName="/moved")
    c.create_log_stream(logGroupName="/moved", logStreamName="s")
    now = int(time.time() * 1000)
    c.put_log_events(logGroupName="/moved", logStreamName="s",
                     logEvents=[{"timestamp": now + i, "message": f"line {i}"} for i in range(5000)])
    # Saved queries and lookup tables live in the bucket too.
    c.put_query_definition(name="saved", queryString="fields @message | limit 5")
    c.create_lookup_table(lookupTableName="owners", tableBody="line,owner\nline 7,ann\n")
    assert first.stop() == 0
    second = Server(tmp_path / "node2", s3_config(endpoint, tmp_path / "keyring")).start()
    try:
        c2 = second.client()
        got = []
        for page in c2.get_paginator("filter_log_events").paginate(logGroupName="/moved"):
            got.extend(e["message"] for e in page["events"])
        assert got == [f"line {i}" for i in range(5000)]
        defs = c2.describe_query_definitions()["queryDefinitions"]
        assert [(d["name"], d["queryString"]) for d in defs] == [("saved", "fields @message | limit 5")]
        tables = c2.describe_lookup_tables()["lookupTables"]
        assert [(t["lookupTableName"], t["recordsCount"]) for t in tables] == [("owners", 1)]
        qid = c2.start_query(logGroupName="/moved", startTime=now // 1000 - 60, endTime=now // 1000 + 60,
                             queryString="lookup owners line as @message OUTPUT owner | filter ispresent(owner) | stats count(*) as n by owner")["queryId"]
        deadline = time.time() + 30
        while (r := c2.get_query_results(queryId=qid))["status"] in ("Scheduled", "Running"):
            assert time.time() < deadline
            time.sleep(0.05)
        assert [{c["field"]: c["value"] for c in row} for row in r["results"]] == [{"owner": "ann", "n": "1"}]
    finally:
        second.kill9()
