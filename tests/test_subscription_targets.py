"""Subscription filters delivering to the Kinesis and Firehose kinds of destination, through boto3:
a Kinesis stream ARN is a subject of a real nats-server with JetStream (one message per record,
the record's data gzip-compressed JSON, its partition key in a header), and a Firehose delivery
stream ARN writes objects of concatenated gzip records into a bucket (a local directory, or a
bucket of the S3-compatible server), named as Firehose's S3 delivery names them. A target that is
down, and logwell killed with SIGKILL, only delay delivery.
"""
import asyncio
import gzip
import json
import os
import re
import shutil
import subprocess
import time
import zlib

import nats
import pytest
from botocore.exceptions import ClientError

from conftest import Server, bucket_files, free_port
from test_durability import s3_config, s3_server  # noqa: F401  (fixture)
from test_subscriptions import code, put

KINESIS = "arn:aws:kinesis:us-east-1:000000000000:stream/app-logs"
FIREHOSE = "arn:aws:firehose:us-east-1:000000000000:deliverystream/archive"
FAST = """
[storage]
flush_age = 1
maintenance_interval = 1

[delivery]
backoff_min_ms = 20
backoff_max_ms = 300
request_timeout_secs = 2
"""


class Nats:
    """A nats-server with JetStream on its own port and store directory, stoppable and restartable."""

    def __init__(self, tmp_path):
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.store = tmp_path / "jetstream"
        self.log = open(tmp_path / "nats.log", "ab")
        self.proc = None

    def start(self):
        exe = shutil.which("nats-server") or "/usr/sbin/nats-server"
        self.proc = subprocess.Popen([exe, "-js", "-sd", str(self.store), "-a", "127.0.0.1", "-p", str(self.port)],
                                     stdout=self.log, stderr=self.log)
        deadline = time.time() + 20
        while True:
            try:
                asyncio.run(self._ping())
                return self
            except Exception:
                assert time.time() < deadline, "nats-server did not start"
                time.sleep(0.1)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)

    async def _ping(self):
        nc = await nats.connect(self.url, connect_timeout=1, max_reconnect_attempts=0)
        await nc.close()

    def add_stream(self, name, subject):
        async def run():
            nc = await nats.connect(self.url)
            await nc.jetstream().add_stream(name=name, subjects=[subject])
            await nc.close()
        asyncio.run(run())

    def records(self, stream):
        """Every message the JetStream stream holds: (partition key, decoded JSON message)."""
        async def run():
            nc = await nats.connect(self.url)
            js = nc.jetstream()
            info = await js.stream_info(stream)
            out = []
            for seq in range(info.state.first_seq, info.state.last_seq + 1):
                m = await js.get_msg(stream, seq)
                out.append((m.headers.get("Kinesis-Partition-Key"), json.loads(gzip.decompress(m.data))))
            await nc.close()
            return out
        return asyncio.run(run())


@pytest.fixture
def nats_server(tmp_path):
    n = Nats(tmp_path).start()
    yield n
    if n.proc.poll() is None:
        n.stop()


def events_of(messages):
    """(stream, id, message) of every DATA_MESSAGE event, in arrival order."""
    return [(m["logStream"], e["id"], e["message"]) for m in messages if m["messageType"] == "DATA_MESSAGE"
            for e in m["logEvents"]]


def assert_in_order_once_at_least(delivered, expected):
    """Every expected event arrived, in its stream's order (redeliveries aside); returns the duplicates."""
    firsts = {}
    for (s, i, m) in delivered:
        firsts.setdefault((s, i), m)
    for s, want in expected.items():
        seen, order = set(), []
        for (st, i, m) in delivered:
            if st == s and i not in seen:
                seen.add(i)
                order.append(m)
        assert order == want, f"stream {s}: {len(order)} of {len(want)} in order"
    return len(delivered) - len(firsts)


def test_kinesis_destination_is_a_jetstream_subject_and_survives_outages_and_kills(tmp_path, nats_server):
    nats_server.add_stream("APP_LOGS", "logs.app")
    config = FAST + f"""
[delivery.kinesis]
"{KINESIS}" = "{nats_server.url}/logs.app"
"arn:aws:kinesis:us-east-1:000000000000:stream/no-stream" = "{nats_server.url}/nobody.listens"
"""
    server = Server(tmp_path / "data", config).start()
    try:
        logs = server.client()
        g = "/sub/kinesis"
        logs.create_log_group(logGroupName=g)
        for s in ["a", "b"]:
            logs.create_log_stream(logGroupName=g, logStreamName=s)
        logs.put_subscription_filter(logGroupName=g, filterName="to-kinesis", filterPattern="-skip",
                                     destinationArn=KINESIS)
        (key, control), = nats_server.records("APP_LOGS")
        assert control["messageType"] == "CONTROL_MESSAGE" and control["owner"] == "CloudwatchLogs"
        assert control["logEvents"][0]["message"] == "CWL CONTROL MESSAGE: Checking health of destination Kinesis stream."

        # Destinations that cannot take the test message, as CloudWatch words it.
        for arn in ["arn:aws:kinesis:us-east-1:000000000000:stream/unmapped",
                    "arn:aws:kinesis:us-east-1:000000000000:stream/no-stream"]:
            with pytest.raises(ClientError) as e:
                logs.put_subscription_filter(logGroupName=g, filterName="x", filterPattern="", destinationArn=arn)
            assert code(e) == "InvalidParameterException"
            assert "Could not deliver test message to specified Kinesis stream" in str(e.value)

        expected = {"a": [], "b": []}
        n = 0

        def put_round():
            nonlocal n
            for s in ["a", "b"]:
                batch = [f"{s} {n + i:05d}" + (" skip" if (n + i) % 7 == 0 else "") for i in range(40)]
                put(logs, g, s, batch)
                expected[s] += [m for m in batch if not m.endswith("skip")]
                n += 40

        put_round()
        deadline = time.time() + 30
        while len(events_of(m for _, m in nats_server.records("APP_LOGS"))) < sum(map(len, expected.values())):
            assert time.time() < deadline, "first round not delivered"
            time.sleep(0.1)
        records = nats_server.records("APP_LOGS")[1:]
        # ByLogStream: a record's partition key is its log stream; one stream per record.
        assert {(k, m["logStream"]) for k, m in records} == {("a", "a"), ("b", "b")}
        assert {(m["owner"], m["logGroup"], tuple(m["subscriptionFilters"])) for _, m in records} == \
            {("000000000000", g, ("to-kinesis",))}

        # The target goes away while events are put, and logwell is killed twice meanwhile.
        nats_server.stop()
        for _ in range(2):
            put_round()
            time.sleep(0.3)
            server.kill9()
            server.start()
            logs = server.client()
        nats_server.start()
        put_round()
        total = sum(map(len, expected.values()))
        deadline = time.time() + 60
        while True:
            delivered = events_of(m for _, m in nats_server.records("APP_LOGS"))
            if len({(s, i) for s, i, _ in delivered}) >= total:
                break
            assert time.time() < deadline, f"{len(delivered)} of {total} delivered"
            time.sleep(0.2)
        duplicates = assert_in_order_once_at_least(delivered, expected)
        print(f"kinesis: {total} events delivered through an outage and two kills, {duplicates} twice")
    finally:
        server.kill9()


def firehose_objects(list_keys, get):
    """Every record Firehose-style objects hold: (key, decoded JSON message), objects in the order
    list_keys gives (by time written: within a second, Firehose's names do not sort by time)."""
    out = []
    for key in list_keys():
        data = get(key)
        # Records are gzip members written back to back; each holds one JSON message.
        while data:
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            out.append((key, json.loads(d.decompress(data))))
            data = d.unused_data
    return out


KEY = re.compile(r"^cwl/\d{4}/\d\d/\d\d/\d\d/archive-1-\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d-[0-9a-f-]{36}$")


def test_firehose_destination_writes_buffered_objects_to_a_local_bucket_and_loses_nothing_on_kill(tmp_path):
    data = tmp_path / "data"
    bucket = data / "buckets" / "archive"
    bucket.mkdir(parents=True)
    config = FAST + f"""message_bytes = 2000

[delivery.firehose."{FIREHOSE}"]
bucket = "archive"
prefix = "cwl/"
buffer_bytes = 4096
buffer_secs = 2

[delivery.firehose."arn:aws:firehose:us-east-1:000000000000:deliverystream/nobucket"]
bucket = "missing"
"""
    server = Server(data, config).start()

    def records():
        files = bucket_files(bucket)
        return firehose_objects(lambda: [str(p.relative_to(bucket)) for p in files],
                                lambda k: (bucket / k).read_bytes())
    try:
        logs = server.client()
        g = "/sub/firehose"
        logs.create_log_group(logGroupName=g)
        for s in ["a", "b"]:
            logs.create_log_stream(logGroupName=g, logStreamName=s)
        with pytest.raises(ClientError) as e:
            logs.put_subscription_filter(logGroupName=g, filterName="x", filterPattern="",
                                         destinationArn="arn:aws:firehose:us-east-1:000000000000:deliverystream/nobucket")
        assert code(e) == "InvalidParameterException"
        assert "Could not deliver test message to specified Firehose stream" in str(e.value)

        logs.put_subscription_filter(logGroupName=g, filterName="archive", filterPattern="", destinationArn=FIREHOSE)
        ((key, control),) = records()
        assert KEY.match(key), key
        assert control["logEvents"][0]["message"] == "CWL CONTROL MESSAGE: Checking health of destination Firehose."

        # Events buffered (2 s) when logwell is killed: they are still delivered after the restart,
        # because the cursor is recorded only once an object holds them.
        expected = {"a": [], "b": []}
        for s in ["a", "b"]:
            batch = [f"{s} held {j}" for j in range(5)]
            put(logs, g, s, batch)
            expected[s] += batch
        time.sleep(0.5)
        assert len(records()) == 1, "nothing written before the buffer is due"
        server.kill9()
        server.start()
        logs = server.client()

        # Then more than a buffer's worth: written as objects of at most about buffer_bytes.
        for i in range(3):
            for s in ["a", "b"]:
                batch = [f"{s} {i} {j:04d} " + os.urandom(20).hex() for j in range(100)]
                put(logs, g, s, batch)
                expected[s] += batch
        total = sum(map(len, expected.values()))
        deadline = time.time() + 30
        while len({(s, i) for s, i, _ in events_of(m for _, m in records())}) < total:
            assert time.time() < deadline, "buffered events lost"
            time.sleep(0.2)
        assert assert_in_order_once_at_least(events_of(m for _, m in records()), expected) == 0
        for key, _ in records():
            assert KEY.match(key), key
        # buffer_bytes bounds an object (plus the record that filled it): ~40 KB of events in
        # messages of at most 2,000 bytes went out as many objects.
        sizes = [(bucket / k).stat().st_size for k in {k for k, _ in records()}]
        assert len(sizes) >= 6 and max(sizes) < 4096 + 2000, sizes
    finally:
        server.kill9()


def test_firehose_destination_writes_to_a_bucket_of_the_s3_server(tmp_path, s3_server):  # noqa: F811
    endpoint, s3 = s3_server
    s3.create_bucket(Bucket="archive")
    config = s3_config(endpoint) + f"""
[delivery]
backoff_min_ms = 20
backoff_max_ms = 300

[delivery.firehose."{FIREHOSE}"]
bucket = "archive"
prefix = "cwl/"
buffer_secs = 0.5
"""
    server = Server(tmp_path / "data", config).start()
    try:
        logs = server.client()
        g = "/sub/firehose-s3"
        logs.create_log_group(logGroupName=g)
        logs.create_log_stream(logGroupName=g, logStreamName="s")
        logs.put_subscription_filter(logGroupName=g, filterName="archive", filterPattern="ERROR",
                                     destinationArn=FIREHOSE)
        put(logs, g, "s", ["ERROR one", "INFO two", "ERROR three"])

        def records():
            objects = s3.list_objects_v2(Bucket="archive").get("Contents", [])
            keys = lambda: [o["Key"] for o in sorted(objects, key=lambda o: o["LastModified"])]  # noqa: E731
            return firehose_objects(keys, lambda k: s3.get_object(Bucket="archive", Key=k)["Body"].read())
        deadline = time.time() + 30
        while len(events_of(m for _, m in records())) < 2:
            assert time.time() < deadline, "not delivered to S3"
            time.sleep(0.2)
        assert [m for _, _, m in events_of(m for _, m in records())] == ["ERROR one", "ERROR three"]
        assert all(KEY.match(k) for k, _ in records())
    finally:
        server.kill9()
