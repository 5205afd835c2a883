"""End-to-end tests of logwell's CloudWatch Logs JSON API through boto3 (and raw HTTP for protocol errors).

Expected values come from the CloudWatch Logs API reference (shared/reference/cloudwatch-logs.md §1).
"""
import http.client
import json
import re
import time

import pytest
from botocore.exceptions import ClientError

from conftest import FAST_CONFIG, Server

MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR


def now_ms() -> int:
    return int(time.time() * 1000)


def error_of(excinfo) -> tuple[str, int]:
    """(exception name, HTTP status) of a botocore ClientError."""
    resp = excinfo.value.response
    return resp["Error"]["Code"], resp["ResponseMetadata"]["HTTPStatusCode"]


def expect_error(code: str, fn, *args, **kwargs):
    with pytest.raises(ClientError) as ei:
        fn(*args, **kwargs)
    got, status = error_of(ei)
    assert got == code, f"expected {code}, got {got}: {ei.value}"
    assert status == 400, f"{code} must come with HTTP 400, got {status}"
    return ei.value


def filter_all(logs, **kwargs) -> list[dict]:
    """Every event FilterLogEvents returns, following nextToken until it is absent."""
    out = []
    for page in logs.get_paginator("filter_log_events").paginate(**kwargs):
        out.extend(page["events"])
    return out


def stored(logs, group) -> list[tuple[str, int, str]]:
    return [(e["logStreamName"], e["timestamp"], e["message"]) for e in filter_all(logs, logGroupName=group)]


def get_forward(logs, group, stream, **kwargs) -> list[dict]:
    """GetLogEvents from the head, following nextForwardToken until it comes back unchanged."""
    r = logs.get_log_events(logGroupName=group, logStreamName=stream, startFromHead=True, **kwargs)
    events = list(r["events"])
    token = r["nextForwardToken"]
    for _ in range(10_000):
        r = logs.get_log_events(logGroupName=group, logStreamName=stream, startFromHead=True, nextToken=token,
                                **kwargs)
        events.extend(r["events"])
        if r["nextForwardToken"] == token:
            return events
        token = r["nextForwardToken"]
    raise AssertionError("nextForwardToken never repeated")


def get_backward(logs, group, stream, **kwargs) -> list[dict]:
    """GetLogEvents from the tail (the default), following nextBackwardToken until it comes back unchanged.
    Returns the events oldest first."""
    r = logs.get_log_events(logGroupName=group, logStreamName=stream, **kwargs)
    pages = [r["events"]]
    token = r["nextBackwardToken"]
    for _ in range(10_000):
        r = logs.get_log_events(logGroupName=group, logStreamName=stream, nextToken=token, **kwargs)
        pages.append(r["events"])
        if r["nextBackwardToken"] == token:
            return [e for page in reversed(pages) for e in page]
        token = r["nextBackwardToken"]
    raise AssertionError("nextBackwardToken never repeated")


def make_group_stream(logs, group="g", stream="s"):
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName=stream)


# ------------------------------------------------------------------------------------------ log groups


def test_group_create_describe_delete(logs):
    # kmsKeyId needs a KMS: tests/test_kms.py.
    t0 = now_ms()
    logs.create_log_group(logGroupName="/life/main", tags={"team": "core", "env": "test"},
                          logGroupClass="INFREQUENT_ACCESS")
    logs.create_log_group(logGroupName="/life/plain")
    t1 = now_ms()

    groups = logs.describe_log_groups(logGroupNamePrefix="/life/")["logGroups"]
    assert [g["logGroupName"] for g in groups] == ["/life/main", "/life/plain"]
    main, plain = groups
    assert main["logGroupClass"] == "INFREQUENT_ACCESS"
    assert plain["logGroupClass"] == "STANDARD"
    assert "kmsKeyId" not in plain
    assert t0 - 1000 <= main["creationTime"] <= t1 + 1000
    assert "retentionInDays" not in main, "a group without retention must omit retentionInDays"
    assert main["storedBytes"] == 0
    for g in groups:
        name = g["logGroupName"]
        assert re.fullmatch(rf"arn:aws:logs:us-east-1:\d{{12}}:log-group:{re.escape(name)}:\*", g["arn"]), g["arn"]
        assert g["logGroupArn"] == g["arn"][: -len(":*")]
        assert not g["logGroupArn"].endswith(":*")
    assert logs.list_tags_log_group(logGroupName="/life/main")["tags"] == {"team": "core", "env": "test"}

    expect_error("ResourceAlreadyExistsException", logs.create_log_group, logGroupName="/life/main")

    logs.delete_log_group(logGroupName="/life/main")
    names = [g["logGroupName"] for g in logs.describe_log_groups(logGroupNamePrefix="/life/")["logGroups"]]
    assert names == ["/life/plain"]
    expect_error("ResourceNotFoundException", logs.delete_log_group, logGroupName="/life/main")
    # The name is free again after deletion.
    logs.create_log_group(logGroupName="/life/main")
    assert "kmsKeyId" not in logs.describe_log_groups(logGroupNamePrefix="/life/main")["logGroups"][0]


def test_group_name_validation(logs):
    for bad in ["bad name", "a" * 513, "colon:name", "star*"]:
        expect_error("InvalidParameterException", logs.create_log_group, logGroupName=bad)
    # 512 characters of the allowed alphabet is the longest valid name.
    longest = "/._-#" + "a" * 507
    logs.create_log_group(logGroupName=longest)
    assert [g["logGroupName"] for g in logs.describe_log_groups()["logGroups"]] == [longest]
    expect_error("InvalidParameterException", logs.create_log_group, logGroupName="g", logGroupClass="HOT")
    expect_error("InvalidParameterException", logs.create_log_group, logGroupName="aws/reserved")
    assert [g["logGroupName"] for g in logs.describe_log_groups()["logGroups"]] == [longest]


def test_validation_messages_quote_the_value_whole(logs):
    too_long = "/" + "b" * 512
    with pytest.raises(ClientError) as e:
        logs.create_log_group(logGroupName=too_long)
    assert e.value.response["Error"]["Message"] == (
        f"1 validation error detected: Value '{too_long}' at 'logGroupName' failed to satisfy "
        "constraint: Member must have length between 1 and 512")


def test_log_group_identifier_accepts_name_or_arn(logs):
    make_group_stream(logs, "/ident/app", "s")
    t = now_ms() - MINUTE
    put(logs, [{"timestamp": t, "message": "by identifier"}], group="/ident/app")
    arn = logs.describe_log_groups(logGroupNamePrefix="/ident/")["logGroups"][0]["logGroupArn"]
    for ident in [arn, "/ident/app"]:
        streams = logs.describe_log_streams(logGroupIdentifier=ident)["logStreams"]
        assert [s["logStreamName"] for s in streams] == ["s"]
        got = logs.get_log_events(logGroupIdentifier=ident, logStreamName="s", startFromHead=True)["events"]
        assert [e["message"] for e in got] == ["by identifier"]
        assert [e["message"] for e in filter_all(logs, logGroupIdentifier=ident)] == ["by identifier"]
    expect_error("InvalidParameterException", logs.filter_log_events, logGroupName="/ident/app",
                 logGroupIdentifier=arn)


def test_describe_log_groups_pattern_and_prefix(logs):
    for n in ["/pat/Alpha-one", "/pat/alpha-two", "/pat/beta", "/other/alpha-x", "/other/gamma"]:
        logs.create_log_group(logGroupName=n, tags={"k": "v"})
    # Case-sensitive substring, ASCII-sorted, and only three members per item.
    r = logs.describe_log_groups(logGroupNamePattern="alpha")
    assert [g["logGroupName"] for g in r["logGroups"]] == ["/other/alpha-x", "/pat/alpha-two"]
    for g in r["logGroups"]:
        assert set(g) == {"arn", "creationTime", "logGroupName"}, g
        assert g["arn"].endswith(f":log-group:{g['logGroupName']}:*")
    assert [g["logGroupName"] for g in logs.describe_log_groups(logGroupNamePrefix="/pat/")["logGroups"]] == [
        "/pat/Alpha-one", "/pat/alpha-two", "/pat/beta"]
    assert logs.describe_log_groups(logGroupNamePrefix="/nothing")["logGroups"] == []
    expect_error("InvalidParameterException", logs.describe_log_groups,
                 logGroupNamePrefix="/pat/", logGroupNamePattern="alpha")


def test_describe_log_groups_pagination(logs):
    names = ["/pg/b", "/pg/B", "/pg/_u", "/pg/a", "/pg/-d"]
    for n in names:
        logs.create_log_group(logGroupName=n)
    logs.create_log_group(logGroupName="/zz/outside")
    pages, token = [], None
    for _ in range(10):
        kw = {"nextToken": token} if token else {}
        r = logs.describe_log_groups(logGroupNamePrefix="/pg/", limit=2, **kw)
        pages.append([g["logGroupName"] for g in r["logGroups"]])
        token = r.get("nextToken")
        if not token:
            break
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [n for p in pages for n in p] == sorted(names)  # Python's str order is ASCII order here
    assert sorted(names) == ["/pg/-d", "/pg/B", "/pg/_u", "/pg/a", "/pg/b"]
    # The boto3 paginator walks every group exactly once.
    everything = [g["logGroupName"] for page in logs.get_paginator("describe_log_groups").paginate(
        PaginationConfig={"PageSize": 2}) for g in page["logGroups"]]
    assert everything == sorted(names + ["/zz/outside"])
    expect_error("InvalidParameterException", logs.describe_log_groups, limit=51)


# ------------------------------------------------------------------------------------------ log streams


def test_streams_create_describe_order_and_paginate(logs):
    logs.create_log_group(logGroupName="app")
    names = ["web-2", "web-1", "db-1", "web-3", "cache"]
    for n in names:
        logs.create_log_stream(logGroupName="app", logStreamName=n)
    expect_error("ResourceAlreadyExistsException", logs.create_log_stream, logGroupName="app", logStreamName="web-1")
    expect_error("ResourceNotFoundException", logs.create_log_stream, logGroupName="nope", logStreamName="x")
    expect_error("InvalidParameterException", logs.create_log_stream, logGroupName="app", logStreamName="a:b")

    streams = logs.describe_log_streams(logGroupName="app")["logStreams"]
    assert [s["logStreamName"] for s in streams] == sorted(names)
    for s in streams:
        assert re.fullmatch(rf"arn:aws:logs:us-east-1:\d{{12}}:log-group:app:log-stream:{s['logStreamName']}",
                            s["arn"]), s["arn"]
    r = logs.describe_log_streams(logGroupName="app", logStreamNamePrefix="web-")
    assert [s["logStreamName"] for s in r["logStreams"]] == ["web-1", "web-2", "web-3"]

    # Pagination by name with limit=2.
    seen, token, calls = [], None, 0
    while True:
        kw = {"nextToken": token} if token else {}
        r = logs.describe_log_streams(logGroupName="app", limit=2, **kw)
        calls += 1
        assert len(r["logStreams"]) <= 2
        seen += [s["logStreamName"] for s in r["logStreams"]]
        token = r.get("nextToken")
        if not token or calls > 10:
            break
    assert seen == sorted(names) and calls == 3

    # Distinct last event times: web-3 oldest ... web-2 newest.
    base = now_ms() - 10 * MINUTE
    last = {"web-3": base + 1000, "web-1": base + 2000, "cache": base + 3000, "db-1": base + 4000,
            "web-2": base + 5000}
    for n, t in last.items():
        logs.put_log_events(logGroupName="app", logStreamName=n,
                            logEvents=[{"timestamp": t - 500, "message": f"{n} first"},
                                       {"timestamp": t, "message": f"{n} last"}])
    newest_first = sorted(last, key=last.get, reverse=True)
    r = logs.describe_log_streams(logGroupName="app", orderBy="LastEventTime", descending=True)
    assert [s["logStreamName"] for s in r["logStreams"]] == newest_first
    r = logs.describe_log_streams(logGroupName="app", orderBy="LastEventTime")
    assert [s["logStreamName"] for s in r["logStreams"]] == newest_first[::-1]
    r = logs.describe_log_streams(logGroupName="app", descending=True)
    assert [s["logStreamName"] for s in r["logStreams"]] == sorted(names, reverse=True)
    # Paging keeps the LastEventTime order.
    paged = [s["logStreamName"] for page in logs.get_paginator("describe_log_streams").paginate(
        logGroupName="app", orderBy="LastEventTime", descending=True, PaginationConfig={"PageSize": 2})
        for s in page["logStreams"]]
    assert paged == newest_first
    expect_error("InvalidParameterException", logs.describe_log_streams,
                 logGroupName="app", orderBy="LastEventTime", logStreamNamePrefix="web")
    expect_error("ResourceNotFoundException", logs.describe_log_streams, logGroupName="missing")


def test_stream_event_timestamps(logs):
    make_group_stream(logs, "ts", "s1")
    t = now_ms() - 5 * MINUTE
    before = now_ms()
    logs.put_log_events(logGroupName="ts", logStreamName="s1",
                        logEvents=[{"timestamp": t, "message": "a"}, {"timestamp": t + 700, "message": "b"},
                                   {"timestamp": t + 900, "message": "c"}])
    after = now_ms()
    (s,) = logs.describe_log_streams(logGroupName="ts")["logStreams"]
    assert s["firstEventTimestamp"] == t
    assert s["lastEventTimestamp"] == t + 900
    assert before - 5 <= s["lastIngestionTime"] <= after + 5
    # A later batch with older events moves the first timestamp back but not the last one.
    logs.put_log_events(logGroupName="ts", logStreamName="s1", logEvents=[{"timestamp": t - 100, "message": "z"}])
    (s,) = logs.describe_log_streams(logGroupName="ts")["logStreams"]
    assert s["firstEventTimestamp"] == t - 100
    assert s["lastEventTimestamp"] == t + 900
    assert s["lastIngestionTime"] >= after - 5


def test_delete_stream_removes_its_events(server, logs):
    logs.create_log_group(logGroupName="del")
    for s in ["doomed", "keep"]:
        logs.create_log_stream(logGroupName="del", logStreamName=s)
    t = now_ms() - 20 * MINUTE
    logs.put_log_events(logGroupName="del", logStreamName="doomed",
                        logEvents=[{"timestamp": t + i, "message": f"old doomed {i}"} for i in range(5)])
    logs.put_log_events(logGroupName="del", logStreamName="keep",
                        logEvents=[{"timestamp": t + 10 + i, "message": f"keep {i}"} for i in range(3)])
    time.sleep(2.5)  # the test config flushes after 1 s: the first events are now in a segment
    logs.put_log_events(logGroupName="del", logStreamName="doomed",
                        logEvents=[{"timestamp": t + 100 + i, "message": f"new doomed {i}"} for i in range(4)])
    assert len(stored(logs, "del")) == 12

    logs.delete_log_stream(logGroupName="del", logStreamName="doomed")
    assert stored(logs, "del") == [("keep", t + 10 + i, f"keep {i}") for i in range(3)]
    expect_error("ResourceNotFoundException", logs.get_log_events, logGroupName="del", logStreamName="doomed")
    assert filter_all(logs, logGroupName="del", logStreamNames=["doomed"]) == []
    assert [s["logStreamName"] for s in logs.describe_log_streams(logGroupName="del")["logStreams"]] == ["keep"]
    expect_error("ResourceNotFoundException", logs.delete_log_stream, logGroupName="del", logStreamName="doomed")

    # A new stream with the same name starts empty.
    logs.create_log_stream(logGroupName="del", logStreamName="doomed")
    assert logs.get_log_events(logGroupName="del", logStreamName="doomed", startFromHead=True)["events"] == []
    assert len(stored(logs, "del")) == 3
    # The deleted events stay deleted after a restart.
    server.restart()
    logs = server.client()
    assert logs.get_log_events(logGroupName="del", logStreamName="doomed", startFromHead=True)["events"] == []
    assert stored(logs, "del") == [("keep", t + 10 + i, f"keep {i}") for i in range(3)]


def test_delete_group_removes_its_events(logs):
    make_group_stream(logs, "gone", "s")
    t = now_ms() - MINUTE
    put(logs, [{"timestamp": t + i, "message": f"m{i}"} for i in range(20)], group="gone")
    assert len(stored(logs, "gone")) == 20
    logs.delete_log_group(logGroupName="gone")
    expect_error("ResourceNotFoundException", logs.filter_log_events, logGroupName="gone")
    expect_error("ResourceNotFoundException", logs.get_log_events, logGroupName="gone", logStreamName="s")
    make_group_stream(logs, "gone", "s")
    assert stored(logs, "gone") == []
    assert logs.get_log_events(logGroupName="gone", logStreamName="s")["events"] == []


def test_events_larger_than_a_page(logs):
    """Responses carry at most 1 MB (message bytes + 26 per event); paging still returns every event."""
    make_group_stream(logs)
    t = now_ms() - MINUTE
    msgs = [chr(ord("a") + i) * 400_000 for i in range(5)]
    put(logs, [{"timestamp": t, "message": msgs[0]}, {"timestamp": t + 1, "message": msgs[1]}])
    put(logs, [{"timestamp": t + 2, "message": msgs[2]}, {"timestamp": t + 3, "message": msgs[3]}])
    put(logs, [{"timestamp": t + 4, "message": msgs[4]}])

    def page_bytes(events):
        return sum(len(e["message"].encode()) + 26 for e in events)

    token, got = None, []
    for _ in range(20):
        kw = {"nextToken": token} if token else {}
        r = logs.get_log_events(logGroupName="g", logStreamName="s", startFromHead=True, **kw)
        assert page_bytes(r["events"]) <= 1_048_576
        got += [e["message"] for e in r["events"]]
        if r["nextForwardToken"] == token:
            break
        token = r["nextForwardToken"]
    assert got == msgs
    assert [e["message"] for e in get_backward(logs, "g", "s")] == msgs
    pages = list(logs.get_paginator("filter_log_events").paginate(logGroupName="g"))
    assert all(page_bytes(p["events"]) <= 1_048_576 for p in pages)
    assert [e["message"] for p in pages for e in p["events"]] == msgs


# ------------------------------------------------------------------------------------------ 100,000 events

N = 100_000
BATCH = 10_000


def main_message(i: int) -> str:
    code = 200 if i % 10 else 500
    return f"req {i} status {code} {'OK' if code == 200 else 'ERROR'}"


class Big:
    group = "/big/app"

    def __init__(self, server: Server):
        self.server = server
        self.logs = server.client()
        base = now_ms() - HOUR + MINUTE
        self.main_ts = [base + 30 * i for i in range(N)]  # increasing, unique, within the last hour
        self.main = [("main", self.main_ts[i], main_message(i)) for i in range(N)]
        # Two small streams whose timestamps interleave with main's (odd offsets keep them unique).
        self.side_a = [("side-a", base + 7 + 30_000 * j, f"side-a event {j}") for j in range(100)]
        self.side_b = [("side-b", base + 11 + 50_000 * j, f"side-b event {j}") for j in range(50)]
        self.all = sorted(self.main + self.side_a + self.side_b, key=lambda e: e[1])

    def load(self):
        self.logs.create_log_group(logGroupName=self.group)
        for s in ["main", "side-a", "side-b"]:
            self.logs.create_log_stream(logGroupName=self.group, logStreamName=s)
        for k in range(0, N, BATCH):
            r = self.logs.put_log_events(
                logGroupName=self.group, logStreamName="main",
                logEvents=[{"timestamp": t, "message": m} for _, t, m in self.main[k:k + BATCH]])
            assert "rejectedLogEventsInfo" not in r, r
        for name, events in [("side-a", self.side_a), ("side-b", self.side_b)]:
            r = self.logs.put_log_events(logGroupName=self.group, logStreamName=name,
                                         logEvents=[{"timestamp": t, "message": m} for _, t, m in events])
            assert "rejectedLogEventsInfo" not in r, r
        return self


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    server = Server(tmp_path_factory.mktemp("big") / "data", FAST_CONFIG).start()
    try:
        yield Big(server).load()
    finally:
        server.kill9()


def check_get_forward(b: Big):
    events = get_forward(b.logs, b.group, "main")
    assert len(events) == N
    assert [(e["timestamp"], e["message"]) for e in events] == [(t, m) for _, t, m in b.main]


def check_get_backward(b: Big):
    first = b.logs.get_log_events(logGroupName=b.group, logStreamName="main")
    # The default (startFromHead=false) first page is the tail of the stream.
    assert first["events"], "the first page of a 100,000-event stream is empty"
    tail = [(e["timestamp"], e["message"]) for e in first["events"]]
    assert tail == [(t, m) for _, t, m in b.main[-len(tail):]]
    events = get_backward(b.logs, b.group, "main")
    assert len(events) == N
    assert [(e["timestamp"], e["message"]) for e in events] == [(t, m) for _, t, m in b.main]


def check_filter_group(b: Big):
    events = filter_all(b.logs, logGroupName=b.group)
    assert len(events) == len(b.all)
    assert [(e["logStreamName"], e["timestamp"], e["message"]) for e in events] == b.all
    assert len({e["eventId"] for e in events}) == len(events), "eventIds must be unique"


def check_filter_patterns(b: Big):
    errors = filter_all(b.logs, logGroupName=b.group, filterPattern="ERROR")
    assert len(errors) == N // 10
    assert [e["message"] for e in errors] == [main_message(i) for i in range(0, N, 10)]
    ok = filter_all(b.logs, logGroupName=b.group, filterPattern='"status 200"')
    assert len(ok) == N - N // 10
    assert all(e["message"].endswith("status 200 OK") for e in ok)


def test_get_log_events_pages_forward_through_100k(big):
    check_get_forward(big)


def test_get_log_events_pages_backward_through_100k(big):
    check_get_backward(big)


def test_get_log_events_limit_and_time_window(big):
    b = big
    r = b.logs.get_log_events(logGroupName=b.group, logStreamName="main", startFromHead=True, limit=37)
    assert 0 < len(r["events"]) <= 37
    assert [e["message"] for e in r["events"]] == [m for _, _, m in b.main[:len(r["events"])]]
    r = b.logs.get_log_events(logGroupName=b.group, logStreamName="main", limit=37)
    assert 0 < len(r["events"]) <= 37
    assert [e["message"] for e in r["events"]] == [m for _, _, m in b.main[-len(r["events"]):]]
    r = b.logs.get_log_events(logGroupName=b.group, logStreamName="main", startFromHead=True)
    assert len(r["events"]) <= 10_000

    # startTime is inclusive, endTime exclusive; paging with limit=300 inside the window.
    start, end = b.main_ts[1000], b.main_ts[2000]
    window = get_forward(b.logs, b.group, "main", startTime=start, endTime=end, limit=300)
    assert [(e["timestamp"], e["message"]) for e in window] == [(t, m) for _, t, m in b.main[1000:2000]]
    r = b.logs.get_log_events(logGroupName=b.group, logStreamName="main", startFromHead=True, limit=300,
                              startTime=start, endTime=end)
    assert len(r["events"]) <= 300
    # Same window from the tail.
    window = get_backward(b.logs, b.group, "main", startTime=start, endTime=end, limit=300)
    assert [e["timestamp"] for e in window] == b.main_ts[1000:2000]
    expect_error("InvalidParameterException", b.logs.get_log_events, logGroupName=b.group,
                 logStreamName="main", limit=10_001)
    expect_error("ResourceNotFoundException", b.logs.get_log_events, logGroupName=b.group,
                 logStreamName="nope")


def test_filter_log_events_whole_group(big):
    check_filter_group(big)


def test_filter_log_events_patterns(big):
    check_filter_patterns(big)
    side = filter_all(big.logs, logGroupName=big.group, filterPattern='"side-a event"')
    assert [e["message"] for e in side] == [m for _, _, m in big.side_a]
    assert filter_all(big.logs, logGroupName=big.group, filterPattern="ERROR -ERROR") == []


def test_filter_log_events_time_window_and_streams(big):
    b = big
    start, end = b.main_ts[1000], b.main_ts[1999]
    # Both bounds inclusive.
    got = filter_all(b.logs, logGroupName=b.group, logStreamNames=["main"], startTime=start, endTime=end)
    assert [e["timestamp"] for e in got] == b.main_ts[1000:2000]
    got = filter_all(b.logs, logGroupName=b.group, startTime=start, endTime=end)
    assert [(e["logStreamName"], e["timestamp"], e["message"]) for e in got] == [
        e for e in b.all if start <= e[1] <= end]
    got = filter_all(b.logs, logGroupName=b.group, logStreamNames=["side-b", "side-a"])
    assert [(e["logStreamName"], e["timestamp"], e["message"]) for e in got] == sorted(
        b.side_a + b.side_b, key=lambda e: e[1])
    got = filter_all(b.logs, logGroupName=b.group, logStreamNamePrefix="side-")
    assert len(got) == len(b.side_a) + len(b.side_b)
    assert {e["logStreamName"] for e in got} == {"side-a", "side-b"}
    got = filter_all(b.logs, logGroupName=b.group, logStreamNamePrefix="side-b", filterPattern='"event 4"')
    assert [e["message"] for e in got] == ["side-b event 4"] + [f"side-b event {j}" for j in range(40, 50)]
    # A single page honours limit.
    r = b.logs.filter_log_events(logGroupName=b.group, limit=123)
    assert 0 < len(r["events"]) <= 123 and r.get("nextToken")
    expect_error("InvalidParameterException", b.logs.filter_log_events, logGroupName=b.group,
                 logStreamNames=["main"], logStreamNamePrefix="side")


def test_reads_from_segments_after_flush(big):
    b = big
    store = b.server.data_dir / "store"
    deadline = time.time() + 15
    while not list(store.rglob("*.parquet")) and time.time() < deadline:
        time.sleep(0.5)
    time.sleep(3)  # the test config flushes every second
    assert list(store.rglob("*.parquet")), "nothing was flushed to Parquet segments"
    check_get_forward(b)
    check_get_backward(b)
    check_filter_group(b)
    check_filter_patterns(b)


def test_reads_after_graceful_restart(big):
    b = big
    streams_before = b.logs.describe_log_streams(logGroupName=b.group)["logStreams"]
    assert b.server.stop() == 0, "a graceful stop (SIGTERM) must flush and exit 0"
    b.server.start()
    b.logs = b.server.client()
    streams_after = b.logs.describe_log_streams(logGroupName=b.group)["logStreams"]
    key = ("logStreamName", "firstEventTimestamp", "lastEventTimestamp", "lastIngestionTime", "creationTime")
    assert [tuple(s.get(k) for k in key) for s in streams_after] == [tuple(s.get(k) for k in key)
                                                                     for s in streams_before]
    check_get_forward(b)
    check_get_backward(b)
    check_filter_group(b)
    errors = filter_all(b.logs, logGroupName=b.group, filterPattern="ERROR")
    assert [e["message"] for e in errors] == [main_message(i) for i in range(0, N, 10)]


def test_acknowledged_writes_survive_a_crash(server, logs):
    """An event PutLogEvents acknowledged is durable: SIGKILL right after the call loses nothing."""
    make_group_stream(logs, "crash", "s")
    logs.create_log_stream(logGroupName="crash", logStreamName="gone")
    logs.put_retention_policy(logGroupName="crash", retentionInDays=30)
    logs.tag_log_group(logGroupName="crash", tags={"k": "v"})
    t = now_ms() - MINUTE
    expected = []
    for k in range(3):
        batch = [{"timestamp": t + 10 * k + i, "message": f"batch {k} event {i}"} for i in range(10)]
        put(logs, batch, group="crash")
        expected += [("s", e["timestamp"], e["message"]) for e in batch]
    put(logs, [{"timestamp": t, "message": "deleted"}], group="crash", stream="gone")
    logs.delete_log_stream(logGroupName="crash", logStreamName="gone")
    server.kill9()
    server.start()
    logs = server.client()
    assert stored(logs, "crash") == expected
    (g,) = logs.describe_log_groups(logGroupNamePrefix="crash")["logGroups"]
    assert g["retentionInDays"] == 30
    assert logs.list_tags_log_group(logGroupName="crash")["tags"] == {"k": "v"}
    assert [s["logStreamName"] for s in logs.describe_log_streams(logGroupName="crash")["logStreams"]] == ["s"]


# ------------------------------------------------------------------------------------------ PutLogEvents rules


def put(logs, events, group="g", stream="s", **kw):
    return logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events, **kw)


def test_put_too_many_events(logs):
    make_group_stream(logs)
    t = now_ms() - MINUTE
    put(logs, [{"timestamp": t, "message": "seed"}])
    expect_error("InvalidParameterException", put, logs, [{"timestamp": t + 1, "message": "x"}] * 10_001)
    assert len(stored(logs, "g")) == 1
    put(logs, [{"timestamp": t + 1, "message": "x"}] * 10_000)
    assert len(stored(logs, "g")) == 10_001


def test_put_batch_byte_limit(logs):
    make_group_stream(logs)
    t = now_ms() - MINUTE
    # 4 events of 262,118 bytes: 4 * (262,118 + 26) = 1,048,576 bytes, exactly the limit.
    size = 1_048_576 // 4 - 26
    over = [{"timestamp": t, "message": "a" * size} for _ in range(3)] + [{"timestamp": t, "message": "a" * (size + 1)}]
    expect_error("InvalidParameterException", put, logs, over)
    assert stored(logs, "g") == []
    # Multi-byte characters count in UTF-8 bytes: 'é' is 2 bytes.
    utf8_over = [{"timestamp": t, "message": "é" * (size // 2 + 1)}] + [
        {"timestamp": t, "message": "a" * size} for _ in range(3)]
    expect_error("InvalidParameterException", put, logs, utf8_over)
    assert stored(logs, "g") == []
    exact = [{"timestamp": t, "message": "a" * size} for _ in range(4)]
    r = put(logs, exact)
    assert "rejectedLogEventsInfo" not in r
    got = stored(logs, "g")
    assert len(got) == 4 and all(len(m) == size for _, _, m in got)


def test_put_order_and_span(logs):
    make_group_stream(logs)
    t = now_ms() - HOUR
    put(logs, [{"timestamp": t, "message": "seed"}])
    expect_error("InvalidParameterException", put, logs,
                 [{"timestamp": t + 2, "message": "b"}, {"timestamp": t + 1, "message": "a"}])
    assert len(stored(logs, "g")) == 1
    now = now_ms()
    expect_error("InvalidParameterException", put, logs,
                 [{"timestamp": now - 25 * HOUR, "message": "early"}, {"timestamp": now - MINUTE, "message": "late"}])
    assert len(stored(logs, "g")) == 1
    # Equal timestamps are in order; a span of exactly 24 h is allowed.
    put(logs, [{"timestamp": now - DAY - MINUTE, "message": "edge0"}, {"timestamp": now - MINUTE, "message": "edge1"},
               {"timestamp": now - MINUTE, "message": "edge2"}])
    assert [m for _, _, m in stored(logs, "g")] == ["edge0", "seed", "edge1", "edge2"]


def test_put_too_old_and_too_new(logs):
    make_group_stream(logs)
    now = now_ms()
    events = [{"timestamp": now - 15 * DAY, "message": "old0"}, {"timestamp": now - 15 * DAY + 1, "message": "old1"},
              {"timestamp": now - 2000, "message": "ok0"}, {"timestamp": now - 1000, "message": "ok1"}]
    r = put(logs, events)
    info = r["rejectedLogEventsInfo"]
    # AWS names the last too-old event (inclusive), not the first kept one.
    assert info.get("tooOldLogEventEndIndex") == 1, info
    assert "tooNewLogEventStartIndex" not in info and "expiredLogEventEndIndex" not in info
    assert [m for _, _, m in stored(logs, "g")] == ["ok0", "ok1"]

    now = now_ms()
    r = put(logs, [{"timestamp": now - 500, "message": "ok2"}, {"timestamp": now, "message": "ok3"},
                   {"timestamp": now + 3 * HOUR, "message": "future0"}, {"timestamp": now + 4 * HOUR, "message": "f1"}])
    info = r["rejectedLogEventsInfo"]
    assert info.get("tooNewLogEventStartIndex") == 2, info
    assert "tooOldLogEventEndIndex" not in info
    assert [m for _, _, m in stored(logs, "g")] == ["ok0", "ok1", "ok2", "ok3"]

    # All rejected: the call still succeeds and stores nothing.
    r = put(logs, [{"timestamp": now_ms() - 20 * DAY, "message": "ancient"}])
    assert r["rejectedLogEventsInfo"].get("tooOldLogEventEndIndex") == 0
    assert len(stored(logs, "g")) == 4


def test_put_expired_by_retention(logs):
    make_group_stream(logs)
    logs.put_retention_policy(logGroupName="g", retentionInDays=1)
    now = now_ms()
    r = put(logs, [{"timestamp": now - 2 * DAY, "message": "expired"}, {"timestamp": now - 1000, "message": "fresh"}])
    info = r["rejectedLogEventsInfo"]
    assert info.get("expiredLogEventEndIndex") == 0, info
    assert "tooOldLogEventEndIndex" not in info and "tooNewLogEventStartIndex" not in info
    assert [m for _, _, m in stored(logs, "g")] == ["fresh"]


def test_put_sequence_token_ignored_and_missing_targets(logs):
    make_group_stream(logs)
    t = now_ms() - MINUTE
    r = put(logs, [{"timestamp": t, "message": "one"}], sequenceToken="49590302830192838383838383838383")
    assert "rejectedLogEventsInfo" not in r
    put(logs, [{"timestamp": t + 1, "message": "two"}], sequenceToken="not-the-right-token")
    assert [m for _, _, m in stored(logs, "g")] == ["one", "two"]
    expect_error("ResourceNotFoundException", put, logs, [{"timestamp": t, "message": "x"}], group="nope")
    expect_error("ResourceNotFoundException", put, logs, [{"timestamp": t, "message": "x"}], stream="nope")
    assert [m for _, _, m in stored(logs, "g")] == ["one", "two"]


# ------------------------------------------------------------------------------------------ retention


def test_retention_policy(server, logs):
    logs.create_log_group(logGroupName="ret")
    logs.put_retention_policy(logGroupName="ret", retentionInDays=7)
    (g,) = logs.describe_log_groups(logGroupNamePrefix="ret")["logGroups"]
    assert g["retentionInDays"] == 7
    for bad in [2, 0, 4000]:
        expect_error("InvalidParameterException", logs.put_retention_policy, logGroupName="ret", retentionInDays=bad)
    (g,) = logs.describe_log_groups(logGroupNamePrefix="ret")["logGroups"]
    assert g["retentionInDays"] == 7
    logs.put_retention_policy(logGroupName="ret", retentionInDays=3653)
    assert logs.describe_log_groups(logGroupNamePrefix="ret")["logGroups"][0]["retentionInDays"] == 3653
    logs.delete_retention_policy(logGroupName="ret")
    (g,) = logs.describe_log_groups(logGroupNamePrefix="ret")["logGroups"]
    assert "retentionInDays" not in g, g
    # The raw JSON must leave the key out, not send null.
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    status, body, _ = raw_call(conn, "Logs_20140328.DescribeLogGroups", b'{"logGroupNamePrefix":"ret"}')
    assert status == 200 and "retentionInDays" not in json.loads(body)["logGroups"][0]
    expect_error("ResourceNotFoundException", logs.put_retention_policy, logGroupName="nope", retentionInDays=7)


# ------------------------------------------------------------------------------------------ tags


def test_tags_new_and_old_apis(logs):
    logs.create_log_group(logGroupName="tagged", tags={"a": "1"})
    arn = logs.describe_log_groups(logGroupNamePrefix="tagged")["logGroups"][0]["logGroupArn"]
    assert logs.list_tags_for_resource(resourceArn=arn)["tags"] == {"a": "1"}
    logs.tag_resource(resourceArn=arn, tags={"b": "2", "a": "3"})
    assert logs.list_tags_for_resource(resourceArn=arn)["tags"] == {"a": "3", "b": "2"}
    logs.untag_resource(resourceArn=arn, tagKeys=["a"])
    assert logs.list_tags_for_resource(resourceArn=arn)["tags"] == {"b": "2"}

    assert logs.list_tags_log_group(logGroupName="tagged")["tags"] == {"b": "2"}
    logs.tag_log_group(logGroupName="tagged", tags={"c": "x y"})
    assert logs.list_tags_log_group(logGroupName="tagged")["tags"] == {"b": "2", "c": "x y"}
    logs.untag_log_group(logGroupName="tagged", tags=["b"])
    assert logs.list_tags_log_group(logGroupName="tagged")["tags"] == {"c": "x y"}
    assert logs.list_tags_for_resource(resourceArn=arn)["tags"] == {"c": "x y"}

    logs.create_log_group(logGroupName="untagged")
    assert logs.list_tags_log_group(logGroupName="untagged")["tags"] == {}
    missing = arn.replace(":log-group:tagged", ":log-group:missing")
    expect_error("ResourceNotFoundException", logs.tag_resource, resourceArn=missing, tags={"k": "v"})
    expect_error("ResourceNotFoundException", logs.list_tags_log_group, logGroupName="missing")


# ------------------------------------------------------------------------------------------ raw protocol


def raw_call(conn, target, body: bytes, content_type="application/x-amz-json-1.1"):
    headers = {"Content-Type": content_type}
    if target is not None:
        headers["X-Amz-Target"] = target
    conn.request("POST", "/", body=body, headers=headers)
    r = conn.getresponse()
    return r.status, r.read(), r


def error_type(body: bytes) -> str:
    doc = json.loads(body)
    assert isinstance(doc.get("__type"), str) and doc["__type"], doc
    return doc["__type"].split("#")[-1]


def test_raw_protocol_errors(server, logs):
    make_group_stream(logs)
    t = now_ms() - MINUTE
    put(logs, [{"timestamp": t + i, "message": f"kept {i}"} for i in range(50)])
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)

    status, body, resp = raw_call(conn, "Logs_20140328.DescribeLogGroups", b"{}")
    assert status == 200
    assert resp.getheader("Content-Type") == "application/x-amz-json-1.1"
    assert resp.getheader("x-amzn-RequestId")
    assert [g["logGroupName"] for g in json.loads(body)["logGroups"]] == ["g"]

    status, body, _ = raw_call(conn, "Logs_20140328.DescribeLogGroups", b'{"logGroupNamePrefix": ')
    assert status == 400 and error_type(body) == "SerializationException"

    status, body, _ = raw_call(conn, "Logs_20140328.PutLogEvents", b'[1, 2, 3]')
    assert status == 400
    error_type(body)

    status, body, _ = raw_call(conn, None, b"{}")
    assert status == 400
    error_type(body)

    status, body, _ = raw_call(conn, "Logs_20140328.FrobnicateLogs", b"{}")
    assert status == 400
    error_type(body)

    bad_utf8 = (b'{"logGroupName":"g","logStreamName":"s","logEvents":[{"timestamp":%d,"message":"caf\xe9 \xff"}]}'
                % (t + 100))
    status, body, _ = raw_call(conn, "Logs_20140328.PutLogEvents", bad_utf8)
    assert status == 400
    error_type(body)

    # The connection and the stored data are unharmed.
    assert [m for _, _, m in stored(logs, "g")] == [f"kept {i}" for i in range(50)]
    status, body, _ = raw_call(conn, "Logs_20140328.DescribeLogStreams", b'{"logGroupName":"g"}')
    assert status == 200 and [s["logStreamName"] for s in json.loads(body)["logStreams"]] == ["s"]


def test_describe_log_streams_pages_stay_consistent_while_streams_change(logs):
    """Position tokens: streams created or deleted between pages cause no duplicates or gaps."""
    logs.create_log_group(logGroupName="/paging/streams")
    for n in ["b", "d", "f", "h", "j"]:
        logs.create_log_stream(logGroupName="/paging/streams", logStreamName=n)
    first = logs.describe_log_streams(logGroupName="/paging/streams", limit=2)
    assert [s["logStreamName"] for s in first["logStreams"]] == ["b", "d"]
    # Between pages: one stream before the cursor appears, one already returned disappears.
    logs.create_log_stream(logGroupName="/paging/streams", logStreamName="a")
    logs.delete_log_stream(logGroupName="/paging/streams", logStreamName="b")
    rest = []
    token = first["nextToken"]
    while token:
        page = logs.describe_log_streams(logGroupName="/paging/streams", limit=2, nextToken=token)
        rest += [s["logStreamName"] for s in page["logStreams"]]
        token = page.get("nextToken")
    assert rest == ["f", "h", "j"]
    with pytest.raises(ClientError) as e:
        logs.describe_log_streams(logGroupName="/paging/streams", nextToken="garbage")
    assert e.value.response["Error"]["Code"] == "InvalidParameterException"


def test_filter_log_events_with_json_delimited_and_regex_patterns(logs):
    logs.create_log_group(logGroupName="/patterns")
    logs.create_log_stream(logGroupName="/patterns", logStreamName="s")
    now = int(time.time() * 1000)
    messages = [
        '{"level": "ERROR", "latency": 120, "user": {"id": 7}}',
        '{"level": "INFO", "latency": 20, "user": {"id": 8}}',
        '127.0.0.1 Prod frank [10/Oct/2000:13:25:15 -0700] "GET /index.html HTTP/1.0" 404 1534',
        '127.0.0.1 Prod frank [10/Oct/2000:13:25:16 -0700] "GET /index.html HTTP/1.0" 200 99',
        "plain text with err42 inside",
    ]
    logs.put_log_events(logGroupName="/patterns", logStreamName="s",
                        logEvents=[{"timestamp": now + i, "message": m} for i, m in enumerate(messages)])

    def found(pattern):
        return [e["message"] for e in logs.filter_log_events(logGroupName="/patterns", filterPattern=pattern)["events"]]

    assert found('{ $.level = "ERROR" && $.latency > 100 }') == [messages[0]]
    assert found("{ $.user.id = 8 || $.user.id = 9 }") == [messages[1]]
    assert found("[ip, user, username, timestamp, request = *.html*, status_code = 4*, bytes]") == [messages[2]]
    assert found("%err[0-9]+%") == [messages[4]]
    with pytest.raises(ClientError) as e:
        logs.filter_log_events(logGroupName="/patterns", filterPattern="{ $.a IS NOT NULL }")
    assert e.value.response["Error"]["Code"] == "InvalidParameterException"


def test_test_metric_filter_reports_matches_and_extracted_values(logs):
    apache = '127.0.0.1 Prod frank [10/Oct/2000:13:25:15 -0700] "GET /index.html HTTP/1.0" 404 1534'
    r = logs.test_metric_filter(
        filterPattern="[ip, user, username, timestamp, request = *.html*, status_code = 4*, bytes]",
        logEventMessages=[apache, apache.replace(" 404 ", " 200 "), "not delimited"],
    )
    assert len(r["matches"]) == 1
    m = r["matches"][0]
    assert m["eventNumber"] == 1 and m["eventMessage"] == apache
    assert m["extractedValues"] == {
        "$bytes": "1534", "$status_code": "404", "$request": "GET /index.html HTTP/1.0",
        "$timestamp": "10/Oct/2000:13:25:15 -0700", "$username": "frank", "$user": "Prod", "$ip": "127.0.0.1",
    }
    r = logs.test_metric_filter(filterPattern="{ $.latency > 100 }",
                                logEventMessages=['{"latency": 50}', '{"latency": 150}'])
    assert [(m["eventNumber"], m["extractedValues"]) for m in r["matches"]] == [(2, {"$.latency": "150"})]
    with pytest.raises(ClientError) as e:
        logs.test_metric_filter(filterPattern="{ $.a = }", logEventMessages=["x"])
    assert e.value.response["Error"]["Code"] == "InvalidParameterException"
