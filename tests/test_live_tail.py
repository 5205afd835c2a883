"""Live Tail (StartLiveTail) through boto3 and the AWS CLI: events put during a session arrive in
`sessionUpdate`s, filtered by pattern and stream prefix, sampled above 500 per update, with an
empty heartbeat when nothing happens; bad requests get CloudWatch's errors before the stream starts.

The SDKs send StartLiveTail to a `stream-` host prefix; with a local endpoint that name does not
resolve, so the clients turn prefix injection off (`inject_host_prefix=False` in botocore,
`AWS_DISABLE_HOST_PREFIX_INJECTION=true` for the CLI), as the README says.
"""
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError, EventStreamError

from conftest import Server

ACCOUNT = "000000000000"


def now_ms() -> int:
    return int(time.time() * 1000)


def arn(group: str) -> str:
    return f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:{group}"


class Tail:
    """A StartLiveTail session read on a thread, so a test can wait for events with a timeout."""

    def __init__(self, client, **request):
        self.response = client.start_live_tail(**request)
        self.stream = self.response["responseStream"]
        self.events: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        try:
            for event in self.stream:
                self.events.put(event)
        except Exception as e:  # the stream's end or an in-stream exception
            self.events.put({"error": e})
        self.events.put(None)

    def next(self, timeout=10.0):
        return self.events.get(timeout=timeout)

    def updates_until(self, count, timeout=10.0):
        """The events of `sessionUpdate`s until `count` have arrived, and whether any update was sampled."""
        got, sampled = [], False
        deadline = time.time() + timeout
        while len(got) < count:
            event = self.next(max(0.1, deadline - time.time()))
            assert event is not None and "sessionUpdate" in event, event
            update = event["sessionUpdate"]
            sampled |= update["sessionMetadata"]["sampled"]
            got.extend(update["sessionResults"])
        return got, sampled

    def close(self):
        self.stream.close()


@pytest.fixture
def tail_client(server):
    return server.client(inject_host_prefix=False)


def make_group(logs, group, streams=("web-1", "web-2", "db-1")):
    logs.create_log_group(logGroupName=group)
    for s in streams:
        logs.create_log_stream(logGroupName=group, logStreamName=s)


def put(logs, group, stream, messages):
    t = now_ms()
    logs.put_log_events(logGroupName=group, logStreamName=stream,
                        logEvents=[{"timestamp": t, "message": m} for m in messages])


def test_boto3_live_tail_streams_filters_samples_and_beats(logs, tail_client):
    make_group(logs, "/tail/app")
    make_group(logs, "/tail/other")
    put(logs, "/tail/app", "web-1", ["before the session"])

    everything = Tail(tail_client, logGroupIdentifiers=[arn("/tail/app"), arn("/tail/other")])
    start = everything.next()["sessionStart"]
    assert start["logGroupIdentifiers"] == [arn("/tail/app"), arn("/tail/other")]
    assert start["sessionId"] and start["requestId"]
    errors = Tail(tail_client, logGroupIdentifiers=[arn("/tail/app")], logStreamNamePrefixes=["web-"],
                  logEventFilterPattern="ERROR")
    assert errors.next()["sessionStart"]["logEventFilterPattern"] == "ERROR"

    before = now_ms()
    put(logs, "/tail/app", "web-1", ["GET /index 200", "ERROR payment failed"])
    put(logs, "/tail/app", "db-1", ["ERROR deadlock"])
    put(logs, "/tail/other", "web-2", ["other group"])
    got, sampled = everything.updates_until(4)
    assert not sampled
    assert [(e["logGroupIdentifier"], e["logStreamName"], e["message"]) for e in got] == [
        (f"{ACCOUNT}:/tail/app", "web-1", "GET /index 200"),
        (f"{ACCOUNT}:/tail/app", "web-1", "ERROR payment failed"),
        (f"{ACCOUNT}:/tail/app", "db-1", "ERROR deadlock"),
        (f"{ACCOUNT}:/tail/other", "web-2", "other group"),
    ]
    for e in got:
        assert e["timestamp"] >= before - 1000 and e["ingestionTime"] >= before
    got, _ = errors.updates_until(1)
    assert [e["message"] for e in got] == ["ERROR payment failed"]

    # A burst of 1,200 events in one put: a sample of 500 from all of it, in order, and the update
    # says it sampled.
    put(logs, "/tail/app", "web-2", [f"burst {i:04d}" for i in range(1200)])
    got, sampled = everything.updates_until(500)
    assert sampled and len(got) == 500
    messages = [e["message"] for e in got]
    assert messages == sorted(messages) and len(set(messages)) == 500
    assert messages[0] < "burst 0100" and messages[-1] > "burst 1100", (messages[0], messages[-1])

    # Nothing put: heartbeats (empty updates) keep coming about once a second.
    t0 = time.time()
    for _ in range(2):
        beat = errors.next(timeout=3)["sessionUpdate"]
        assert beat["sessionResults"] == [] and beat["sessionMetadata"] == {"sampled": False}
    assert time.time() - t0 < 3.5
    everything.close()
    errors.close()


def test_live_tail_errors_come_before_the_stream(logs, tail_client):
    make_group(logs, "/tail/e1")
    make_group(logs, "/tail/e2")

    def error(**request):
        with pytest.raises(ClientError) as e:
            tail_client.start_live_tail(**request)
        return e.value.response["Error"]["Code"], e.value.response["Error"]["Message"]

    code, _ = error(logGroupIdentifiers=[arn("/tail/missing")])
    assert code == "ResourceNotFoundException"
    code, msg = error(logGroupIdentifiers=[arn(f"/tail/g{i}") for i in range(11)])
    assert code == "InvalidParameterException" and "less than or equal to 10" in msg
    code, msg = error(logGroupIdentifiers=[arn("/tail/e1"), arn("/tail/e2")], logStreamNames=["web-1"])
    assert (code, msg) == ("InvalidParameterException",
                           "logStreamNames and logStreamNamePrefixes can only be used with a single log group.")
    code, msg = error(logGroupIdentifiers=[arn("/tail/e1")], logStreamNames=["web-1"], logStreamNamePrefixes=["w"])
    assert msg == "Only one of logStreamNames or logStreamNamePrefixes can be provided."
    code, _ = error(logGroupIdentifiers=[arn("/tail/e1")], logEventFilterPattern='{ $.a = ')
    assert code == "InvalidParameterException"


def test_sessions_are_limited_and_a_client_that_leaves_frees_its_place(tmp_path):
    server = Server(tmp_path / "data", "[limits]\nmax_live_tail_sessions = 1\n").start()
    try:
        logs = server.client()
        tail_client = server.client(inject_host_prefix=False)
        make_group(logs, "/tail/limit")
        first = Tail(tail_client, logGroupIdentifiers=["/tail/limit"])
        assert "sessionStart" in first.next()
        with pytest.raises(ClientError) as e:
            tail_client.start_live_tail(logGroupIdentifiers=["/tail/limit"])
        assert e.value.response["Error"]["Code"] == "LimitExceededException"
        # The first client goes away: its place is free within a heartbeat.
        first.close()
        first.response["ResponseMetadata"]  # the response object stays valid after close
        deadline = time.time() + 5
        while True:
            try:
                second = Tail(tail_client, logGroupIdentifiers=["/tail/limit"])
                break
            except ClientError as err:
                assert err.response["Error"]["Code"] == "LimitExceededException"
                assert time.time() < deadline, "the closed session still holds its place"
                time.sleep(0.1)
        assert "sessionStart" in second.next()
        put(logs, "/tail/limit", "web-1", ["after the swap"])
        got, _ = second.updates_until(1)
        assert got[0]["message"] == "after the swap"
        second.close()
    finally:
        server.kill9()


def test_aws_cli_start_live_tail_prints_events(server, logs):
    make_group(logs, "/tail/cli")
    env = dict(os.environ, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
               AWS_DEFAULT_REGION="us-east-1", AWS_PAGER="", AWS_DISABLE_HOST_PREFIX_INJECTION="true")
    aws = str(Path(sys.executable).parent / "aws")
    proc = subprocess.Popen(
        [aws, "--endpoint-url", server.endpoint, "logs", "start-live-tail",
         "--log-group-identifiers", arn("/tail/cli"), "--log-event-filter-pattern", "ERROR"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(l) for l in proc.stdout], daemon=True).start()
    try:
        # Put until the CLI has its session (its start-up takes a second or so), then check what
        # it printed: the matching messages only.
        deadline = time.time() + 30
        seen = []
        n = 0
        while not any("ERROR cli" in l for l in seen):
            assert time.time() < deadline, f"nothing printed: {seen} {proc.poll()}"
            put(logs, "/tail/cli", "web-1", [f"INFO cli {n}", f"ERROR cli {n}"])
            n += 1
            try:
                seen.append(lines.get(timeout=1))
            except queue.Empty:
                pass
        assert not any("INFO cli" in l for l in seen)
    finally:
        proc.kill()
        proc.wait(10)


def test_prefixed_host_names_get_the_event_stream_bytes(server, logs):
    """A request addressed to `stream-localhost` or `streaming-localhost` (what SDKs send when the
    prefixed name resolves) is answered like any other, in AWS event-stream frames whose prelude and
    message CRCs check out."""
    import http.client
    import json
    import struct
    import zlib

    make_group(logs, "/tail/raw")

    def frames(sock_file, count):
        out = []
        for _ in range(count):
            prelude = sock_file.read(12)
            total, headers_len, prelude_crc = struct.unpack(">III", prelude)
            assert zlib.crc32(prelude[:8]) == prelude_crc
            rest = sock_file.read(total - 12)
            assert zlib.crc32(prelude + rest[:-4]) == struct.unpack(">I", rest[-4:])[0]
            headers, pos, raw = {}, 0, rest[:headers_len]
            while pos < len(raw):
                n = raw[pos]; name = raw[pos + 1:pos + 1 + n].decode(); pos += 1 + n
                assert raw[pos] == 7  # string
                vlen = struct.unpack(">H", raw[pos + 1:pos + 3])[0]
                headers[name] = raw[pos + 3:pos + 3 + vlen].decode(); pos += 3 + vlen
            out.append((headers, json.loads(rest[headers_len:-4])))
        return out

    for prefix in ["stream-", "streaming-"]:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        conn.putrequest("POST", "/", skip_host=True)
        conn.putheader("Host", f"{prefix}localhost:{server.port}")
        conn.putheader("X-Amz-Target", "Logs_20140328.StartLiveTail")
        conn.putheader("Content-Type", "application/x-amz-json-1.1")
        body = json.dumps({"logGroupIdentifiers": ["/tail/raw"]}).encode()
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        assert resp.status == 200
        assert resp.getheader("Content-Type") == "application/vnd.amazon.eventstream"
        assert resp.getheader("Transfer-Encoding") == "chunked"
        (h0, p0), (h1, p1) = frames(resp, 2)
        assert h0 == {":message-type": "event", ":event-type": "initial-response",
                      ":content-type": "application/json"} and p0 == {}
        assert h1[":event-type"] == "sessionStart" and p1["logGroupIdentifiers"] == ["/tail/raw"]
        put(logs, "/tail/raw", "web-1", [f"via {prefix}"])
        (h2, p2), = frames(resp, 1)
        assert h2[":event-type"] == "sessionUpdate"
        assert [e["message"] for e in p2["sessionResults"]] == [f"via {prefix}"]
        conn.close()


def test_stopping_the_server_ends_sessions_with_an_exception(tmp_path):
    server = Server(tmp_path / "data").start()
    try:
        logs = server.client()
        make_group(logs, "/tail/stop")
        tail = Tail(server.client(inject_host_prefix=False), logGroupIdentifiers=["/tail/stop"])
        assert "sessionStart" in tail.next()
        t0 = time.time()
        assert server.stop() == 0
        # The session ended with CloudWatch's in-stream exception; the stop did not wait for it.
        assert time.time() - t0 < 5
        while True:
            event = tail.next(timeout=5)
            assert event is not None, "the stream ended without an exception"
            if "error" in event:
                break
        assert isinstance(event["error"], EventStreamError)
        assert event["error"].response["Error"]["Code"] == "SessionStreamingException"
    finally:
        server.kill9()
