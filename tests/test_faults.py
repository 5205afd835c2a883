"""Faults outside logwell: a full disk and an unreachable object store. Writes fail with the
exceptions AWS uses, memory stays bounded, nothing acknowledged is lost, and service resumes by
itself when the fault clears."""
import collections
import os
import shutil
import socket
import subprocess
import threading
import time

import pytest
from botocore.exceptions import ClientError

from conftest import Server
from test_durability import s3_config, s3_server  # noqa: F401  (fixture)


def put(client, group, stream, ids, size=200):
    now = int(time.time() * 1000)
    client.put_log_events(logGroupName=group, logStreamName=stream,
                          logEvents=[{"timestamp": now, "message": f"id={i} {'p' * size}"} for i in ids])


def stored_ids(client, group):
    counts = collections.Counter()
    for page in client.get_paginator("filter_log_events").paginate(logGroupName=group):
        for e in page["events"]:
            counts[e["message"].split(" ", 1)[0][3:]] += 1
    return counts


def put_until_refused(client, group, first_id, max_batches):
    """Puts fresh 500-event batches until one is refused; returns (ids acked, next id, the error)."""
    acked, n = [], first_id
    for _ in range(max_batches):
        ids = [str(n + i) for i in range(500)]
        n += 500
        try:
            put(client, group, "s", ids)
            acked += ids
        except ClientError as e:
            return acked, n, e
    return acked, n, None


def put_until_accepted(client, group, first_id, deadline_s, why):
    """Retries fresh batches until one is accepted (the fault cleared); returns the ids acked."""
    deadline = time.time() + deadline_s
    n = first_id
    while True:
        ids = [str(n + i) for i in range(500)]
        n += 500
        try:
            put(client, group, "s", ids)
            return ids
        except ClientError:
            assert time.time() < deadline, why
            time.sleep(0.5)


def assert_exactly_once(client, group, acked):
    counts = stored_ids(client, group)
    assert [i for i in acked if counts[i] != 1] == []
    assert all(n == 1 for n in counts.values())


@pytest.fixture
def small_disk(tmp_path):
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {r.stderr.decode().strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)])


def test_full_disk_gives_service_unavailable_and_recovers(small_disk):
    filler = small_disk / "filler"
    server = Server(small_disk / "data", "[storage]\nflush_age = 1\nmaintenance_interval = 1\n")
    server.config_path = small_disk.parent / "disk.toml"
    server.config_path.write_text("[storage]\nflush_age = 1\nmaintenance_interval = 1\n")
    server.log_path = small_disk.parent / "disk.log"
    server.start()
    try:
        c = server.client()
        c.create_log_group(logGroupName="/disk")
        c.create_log_stream(logGroupName="/disk", logStreamName="s")
        # Leave ~1 MB free, then write until the disk is full.
        free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
        filler.write_bytes(b"\0" * max(0, free - (1 << 20)))
        acked, n, error = put_until_refused(c, "/disk", 0, 200)
        assert error is not None, "the disk never filled up"
        assert error.response["Error"]["Code"] == "ServiceUnavailableException"
        assert error.response["ResponseMetadata"]["HTTPStatusCode"] >= 500
        assert_exactly_once(c, "/disk", acked)

        filler.unlink()
        acked += put_until_accepted(c, "/disk", n, 30, "writes did not resume after space was freed")
        assert_exactly_once(c, "/disk", acked)
        server.restart()
        assert_exactly_once(server.client(), "/disk", acked)
    finally:
        server.kill9()


class ToggleProxy:
    """A TCP proxy that can be cut (refusing and dropping connections) and restored."""

    def __init__(self, target_port: int):
        self.target = target_port
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.up = True
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if not self.up:
                conn.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                conn.close()
                continue
            with self.lock:
                self.conns += [conn, upstream]
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self):
        self.up = False
        with self.lock:
            for s in self.conns:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self.conns.clear()

    def restore(self):
        self.up = True


def test_unreachable_object_store_throttles_then_recovers(tmp_path, s3_server):  # noqa: F811
    endpoint, _ = s3_server
    proxy = ToggleProxy(int(endpoint.rsplit(":", 1)[1]))
    config = s3_config(f"http://127.0.0.1:{proxy.port}").replace(
        "[storage]\n", "[storage]\nmax_buffered_bytes = 2000000\nflush_bytes = 400000\n", 1
    ) + "retry_timeout = 1\nmax_retries = 1\n"
    server = Server(tmp_path / "data", config).start()
    try:
        c = server.client()
        c.create_log_group(logGroupName="/s3down")
        c.create_log_stream(logGroupName="/s3down", logStreamName="s")
        acked, n = [], 0
        put(c, "/s3down", "s", [str(i) for i in range(1000)])
        acked += [str(i) for i in range(1000)]
        n = 1000
        time.sleep(2.5)  # flushed to S3

        proxy.cut()
        # 100 x 500 x ~210 B = ~10 MB, far above the 2 MB buffer limit.
        more, n, throttled = put_until_refused(c, "/s3down", n, 100)
        acked += more
        assert throttled is not None, "buffering grew without bound while the store was down"
        assert throttled.response["Error"]["Code"] in ("ThrottlingException", "ServiceUnavailableException")
        # Reading flushed data needs the store: a clear 5xx, not a hang or a wrong answer.
        with pytest.raises(ClientError) as read_error:
            list(stored_ids(c, "/s3down"))
        assert read_error.value.response["Error"]["Code"] == "ServiceUnavailableException"

        proxy.restore()
        acked += put_until_accepted(c, "/s3down", n, 60, "writes did not resume after the store came back")
        assert_exactly_once(c, "/s3down", acked)
        server.restart()
        assert_exactly_once(server.client(), "/s3down", acked)
    finally:
        server.kill9()


def test_starts_and_ingests_while_the_object_store_is_down(tmp_path, s3_server):  # noqa: F811
    """A node whose object store is unreachable at start-up starts from its own copy of the catalog,
    acknowledges events into its WAL, answers reads of what it holds, and publishes once the store
    is back."""
    endpoint, s3 = s3_server
    proxy = ToggleProxy(int(endpoint.rsplit(":", 1)[1]))
    config = s3_config(f"http://127.0.0.1:{proxy.port}") + "retry_timeout = 1\nmax_retries = 1\n"
    server = Server(tmp_path / "data", config).start()

    def newest_manifest():
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="logwell-test", Prefix="cluster-a/catalog/manifest-")
                .get("Contents", [])]
        return max(keys, default="")

    try:
        c = server.client()
        c.create_log_group(logGroupName="/offline")
        c.create_log_stream(logGroupName="/offline", logStreamName="s")
        c.put_query_definition(name="saved", queryString="fields @message")
        put(c, "/offline", "s", [str(i) for i in range(1000)])
        acked = [str(i) for i in range(1000)]
        time.sleep(2.5)  # flushed: segments and a manifest are in the store
        server.kill9()

        proxy.cut()
        server.start()
        c = server.client()
        since = int(time.time() * 1000)
        put(c, "/offline", "s", [str(i) for i in range(1000, 2000)])
        acked += [str(i) for i in range(1000, 2000)]
        # What it holds locally answers: the new events, the groups, the saved query.
        fresh = c.filter_log_events(logGroupName="/offline", startTime=since)["events"]
        assert len(fresh) == 1000
        assert [g["logGroupName"] for g in c.describe_log_groups()["logGroups"]] == ["/offline"]
        assert [d["name"] for d in c.describe_query_definitions()["queryDefinitions"]] == ["saved"]
        time.sleep(2.5)  # flush attempts fail meanwhile; nothing is lost

        before = newest_manifest()
        proxy.restore()
        deadline = time.time() + 60
        while True:  # until the old segments are readable again
            try:
                assert_exactly_once(c, "/offline", acked)
                break
            except ClientError:
                assert time.time() < deadline, "reads did not resume after the store came back"
                time.sleep(0.5)
        # The lease is taken and the buffered events are published in a new manifest.
        deadline = time.time() + 60
        while newest_manifest() == before:
            assert time.time() < deadline, "nothing was published after the store came back"
            time.sleep(0.5)
        server.kill9()
        # With the local WAL gone, only the store has them: it must have all of them.
        shutil.rmtree(tmp_path / "data" / "wal")
        server.start()
        assert_exactly_once(server.client(), "/offline", acked)
    finally:
        server.kill9()
