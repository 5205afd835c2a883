"""Logs Insights and SQL through boto3 and the AWS CLI: StartQuery, GetQueryResults, StopQuery,
DescribeQueries, GetLogRecord and query definitions, against a running logwell.

Expected values follow the CloudWatch Logs reference (shared/reference/cloudwatch-logs.md §1.4, §4).
"""
import json
import time

import pytest
from botocore.exceptions import ClientError

from conftest import Server, aws_cli

GROUP = "/app/queries"

# Flush rarely: the queries must see events that are only in memory.
SLOW_FLUSH = """
[storage]
flush_age = 3600
maintenance_interval = 3600
"""


def wait(logs, query_id: str, timeout: float = 60.0) -> dict:
    deadline = time.time() + timeout
    while True:
        r = logs.get_query_results(queryId=query_id)
        if r["status"] not in ("Scheduled", "Running"):
            return r
        assert time.time() < deadline, f"query {query_id} still {r['status']}"
        time.sleep(0.05)


def rows(result: dict) -> list[dict]:
    return [{c["field"]: c["value"] for c in row} for row in result["results"]]


def error_code(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]


@pytest.fixture
def loaded(tmp_path):
    """A server holding 1,000 JSON events and one plain line, none of them flushed yet."""
    server = Server(tmp_path / "data", SLOW_FLUSH).start()
    logs = server.client()
    logs.create_log_group(logGroupName=GROUP)
    logs.create_log_stream(logGroupName=GROUP, logStreamName="api-1")
    base = (int(time.time()) - 600) * 1000
    events = []
    for i in range(1000):
        level = "ERROR" if i % 10 == 0 else "INFO"
        msg = {"level": level, "status": 500 if level == "ERROR" else 200, "latency": i, "req": {"id": f"r{i}"}}
        events.append({"timestamp": base + i * 100, "message": json.dumps(msg)})
    events.append({"timestamp": base + 1000 * 100, "message": "plain text line"})
    logs.put_log_events(logGroupName=GROUP, logStreamName="api-1", logEvents=events)
    yield server, logs, base
    server.kill9()


def start(logs, query: str, base: int, **kw) -> str:
    args = dict(logGroupName=GROUP, startTime=base // 1000 - 60, endTime=base // 1000 + 3600, queryString=query)
    args.update(kw)
    return logs.start_query(**args)["queryId"]


def test_insights_query_sees_unflushed_events_newest_first(loaded):
    _, logs, base = loaded
    r = wait(logs, start(logs, "fields @timestamp, level, req.id | filter level = 'ERROR' | limit 3", base))
    assert r["status"] == "Complete"
    got = rows(r)
    assert [g["req.id"] for g in got] == ["r990", "r980", "r970"]
    assert all(g["level"] == "ERROR" for g in got)
    # @timestamp as yyyy-MM-dd HH:mm:ss.SSS UTC, and an @ptr on each row.
    t = time.gmtime((base + 99_000) / 1000)
    assert got[0]["@timestamp"] == time.strftime("%Y-%m-%d %H:%M:%S", t) + ".000"
    assert all(g["@ptr"] for g in got)
    # The row's fields come in the order the query named them, @ptr last.
    assert [c["field"] for c in r["results"][0]] == ["@timestamp", "level", "req.id", "@ptr"]
    stats = r["statistics"]
    assert stats["recordsScanned"] == 1001.0
    assert stats["recordsMatched"] == 100.0
    assert stats["bytesScanned"] > 0


def test_stats_by_bin_and_field(loaded):
    _, logs, base = loaded
    r = wait(logs, start(logs, "stats count(*) as n, avg(latency) as mean by level", base))
    # The plain line has no level: it forms its own group, whose key is left out.
    assert rows(r) == [
        {"level": "ERROR", "n": "100", "mean": "495"},
        {"level": "INFO", "n": "900", "mean": "500"},
        {"n": "1"},
    ]
    assert r["statistics"]["recordsMatched"] == 1001.0
    r = wait(logs, start(logs, "filter ispresent(level) | stats count(*) as n by bin(1m)", base))
    total = sum(int(x["n"]) for x in rows(r))
    assert total == 1000
    assert all("bin(1m)" in x for x in rows(r))


def test_results_survive_a_restart_after_flush(loaded):
    server, logs, base = loaded
    server.restart()  # graceful stop flushes everything to segments
    logs = server.client()
    r = wait(logs, start(logs, "stats count(*) as n", base))
    assert rows(r) == [{"n": "1001"}]


def test_get_log_record_follows_ptr(loaded):
    _, logs, base = loaded
    r = wait(logs, start(logs, "fields @message | filter req.id = 'r7'", base))
    (row,) = r["results"]
    ptr = {c["field"]: c["value"] for c in row}["@ptr"]
    rec = logs.get_log_record(logRecordPointer=ptr)["logRecord"]
    assert rec["@logStream"] == "api-1"
    assert rec["@timestamp"] == str(base + 700)
    assert json.loads(rec["@message"])["req"]["id"] == "r7"
    assert rec["req.id"] == "r7" and rec["latency"] == "7"
    with pytest.raises(ClientError) as ei:
        logs.get_log_record(logRecordPointer="not-a-pointer")
    assert error_code(ei) == "InvalidParameterException"


def test_query_errors(loaded):
    _, logs, base = loaded
    with pytest.raises(ClientError) as ei:
        start(logs, "fields @message | filter (", base)
    assert error_code(ei) == "MalformedQueryException"
    assert "line 1" in str(ei.value)
    # Where the query went wrong, as queryCompileError's location (character offsets).
    where = ei.value.response["queryCompileError"]["location"]
    assert where["startCharOffset"] == 26 and where["endCharOffset"] >= 26, where
    with pytest.raises(ClientError) as ei:
        start(logs, "fields nosuch(@message)", base)
    assert error_code(ei) == "MalformedQueryException"
    assert "nosuch" in str(ei.value)
    with pytest.raises(ClientError) as ei:
        start(logs, "fields @message", base, logGroupName="/no/such/group")
    assert error_code(ei) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as ei:
        logs.start_query(logGroupName=GROUP, startTime=200, endTime=100, queryString="fields @message")
    assert error_code(ei) == "InvalidParameterException"
    with pytest.raises(ClientError) as ei:
        logs.get_query_results(queryId="00000000-0000-0000-0000-000000000000")
    assert error_code(ei) == "ResourceNotFoundException"
    # A pathological regex is linear-time: it answers instead of hanging the server.
    r = wait(logs, start(logs, "filter @message like /(a+)+$/ | stats count(*) as n", base), timeout=30)
    assert r["status"] == "Complete"


def test_stop_and_describe_queries(loaded):
    _, logs, base = loaded
    qid = start(logs, "stats count(*) by level", base)
    r = wait(logs, qid)
    with pytest.raises(ClientError) as ei:
        logs.stop_query(queryId=qid)
    assert error_code(ei) == "InvalidParameterException"
    described = logs.describe_queries(logGroupName=GROUP)["queries"]
    mine = [q for q in described if q["queryId"] == qid]
    assert mine and mine[0]["status"] == "Complete"
    assert mine[0]["queryString"] == "stats count(*) by level"
    assert qid in [q["queryId"] for q in logs.describe_queries(status="Complete")["queries"]]
    assert qid not in [q["queryId"] for q in logs.describe_queries(status="Running")["queries"]]


def test_a_short_query_is_complete_at_the_first_poll(loaded):
    """GetQueryResults waits (up to 100 ms) for a running query to end, so a client that polls
    once right after StartQuery gets the answer instead of `Running` and another poll later."""
    _, logs, base = loaded
    first_polls = []
    for _ in range(5):
        qid = start(logs, "stats count(*) as n by level", base)
        r = logs.get_query_results(queryId=qid)
        first_polls.append(r["status"])
        if r["status"] == "Complete":
            assert sorted(row["n"] for row in rows(r) if "level" in row) == ["100", "900"]
    # A loaded CI machine may take longer than the wait once or twice, not every time.
    assert first_polls.count("Complete") >= 3, first_polls


def test_sql_query(loaded):
    _, logs, base = loaded
    qid = logs.start_query(
        queryLanguage="SQL", startTime=base // 1000 - 60, endTime=base // 1000 + 3600,
        queryString=f"SELECT `@logStream` AS s, count(*) AS n FROM `{GROUP}` GROUP BY `@logStream`",
    )["queryId"]
    r = wait(logs, qid)
    assert r["status"] == "Complete", r
    assert rows(r) == [{"s": "api-1", "n": "1001"}]
    assert r["queryLanguage"] == "SQL"


def test_query_definitions_persist(tmp_path):
    server = Server(tmp_path / "data", SLOW_FLUSH).start()
    try:
        logs = server.client()
        qd = logs.put_query_definition(name="errors/by-level", queryString="stats count(*) by level",
                                       logGroupNames=[GROUP])["queryDefinitionId"]
        logs.put_query_definition(name="other", queryString="fields @message")
        server.restart()
        logs = server.client()
        defs = logs.describe_query_definitions(queryDefinitionNamePrefix="errors/")["queryDefinitions"]
        assert [(d["queryDefinitionId"], d["name"], d["queryString"], d["logGroupNames"]) for d in defs] == [
            (qd, "errors/by-level", "stats count(*) by level", [GROUP])]
        # An update replaces the definition: the omitted log groups are cleared.
        logs.put_query_definition(queryDefinitionId=qd, name="errors/by-level", queryString="stats count(*)")
        (d,) = logs.describe_query_definitions(queryDefinitionNamePrefix="errors/")["queryDefinitions"]
        assert d["queryString"] == "stats count(*)" and d.get("logGroupNames", []) == []
        assert logs.delete_query_definition(queryDefinitionId=qd)["success"] is True
        assert len(logs.describe_query_definitions()["queryDefinitions"]) == 1
        with pytest.raises(ClientError) as ei:
            logs.delete_query_definition(queryDefinitionId=qd)
        assert error_code(ei) == "ResourceNotFoundException"
    finally:
        server.kill9()


def test_aws_cli_start_query_and_results(loaded):
    server, _, base = loaded
    out = aws_cli(server.endpoint, "logs", "start-query", "--log-group-name", GROUP,
                  "--start-time", str(base // 1000 - 60), "--end-time", str(base // 1000 + 3600),
                  "--query-string", "filter status = 500 | stats count(*) as errors")
    qid = json.loads(out.stdout)["queryId"]
    deadline = time.time() + 60
    while True:
        res = json.loads(aws_cli(server.endpoint, "logs", "get-query-results", "--query-id", qid).stdout)
        if res["status"] == "Complete":
            break
        assert time.time() < deadline
        time.sleep(0.1)
    assert res["results"] == [[{"field": "errors", "value": "100"}]]


def test_lookup_tables_enrich_queries_and_survive_a_restart(loaded):
    server, logs, base = loaded
    csv = "level,severity,team\nERROR,high,oncall\nINFO,low,nobody\n"
    made = logs.create_lookup_table(lookupTableName="levels", tableBody=csv, description="by level")
    arn = made["lookupTableArn"]
    assert arn.endswith(":lookup-table:levels") and made["createdAt"] > 0
    with pytest.raises(ClientError) as ei:
        logs.create_lookup_table(lookupTableName="levels", tableBody=csv)
    assert error_code(ei) == "ResourceAlreadyExistsException"
    with pytest.raises(ClientError) as ei:
        logs.create_lookup_table(lookupTableName="bad-name", tableBody=csv)
    assert error_code(ei) == "InvalidParameterException"
    with pytest.raises(ClientError) as ei:
        logs.create_lookup_table(lookupTableName="nobody")
    assert error_code(ei) == "InvalidParameterException"

    got = logs.get_lookup_table(lookupTableArn=arn)
    assert got["tableBody"] == csv and got["sizeBytes"] == len(csv) and got["description"] == "by level"
    listed = logs.describe_lookup_tables(lookupTableNamePrefix="lev")["lookupTables"]
    assert [(t["lookupTableName"], t["tableFields"], t["recordsCount"]) for t in listed] == [
        ("levels", ["level", "severity", "team"], 2)
    ]

    q = "lookup levels level OUTPUT severity | stats count(*) as n by severity | sort n desc"
    r = wait(logs, start(logs, q, base))
    assert r["status"] == "Complete", r
    assert rows(r) == [{"severity": "low", "n": "900"}, {"severity": "high", "n": "100"}, {"n": "1"}]

    # A table made from a finished query's results.
    qid = start(logs, "stats count(*) as n by level", base)
    assert wait(logs, qid)["status"] == "Complete"
    from_query = logs.create_lookup_table(lookupTableName="counts", queryId=qid)["lookupTableArn"]
    body = logs.get_lookup_table(lookupTableArn=from_query)["tableBody"]
    assert body.splitlines()[0] == "level,n" and "ERROR,100" in body.splitlines()

    logs.update_lookup_table(lookupTableArn=arn, tableBody="level,severity\nERROR,critical\n")
    server.restart()
    logs = server.client()
    r = wait(logs, start(logs, "filter level = 'ERROR' | lookup levels level OUTPUT severity | stats count(*) as n by severity", base))
    assert rows(r) == [{"severity": "critical", "n": "100"}]
    logs.delete_lookup_table(lookupTableArn=arn)
    with pytest.raises(ClientError) as ei:
        logs.get_lookup_table(lookupTableArn=arn)
    assert error_code(ei) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as ei:
        start(logs, "lookup levels level OUTPUT severity", base)
    assert error_code(ei) == "ResourceNotFoundException"


def test_definitions_an_older_version_kept_on_local_disk_move_to_the_object_store(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    old = {"d-1": {"queryDefinitionId": "d-1", "name": "legacy", "queryString": "fields @message",
                   "lastModified": 1, "logGroupNames": [], "queryLanguage": "CWLI"}}
    (data / "query-definitions.json").write_text(json.dumps(old))
    server = Server(data).start()
    try:
        defs = server.client().describe_query_definitions()["queryDefinitions"]
        assert [(d["queryDefinitionId"], d["name"]) for d in defs] == [("d-1", "legacy")]
        assert (data / "store" / "settings" / "query-definitions.json").exists()
    finally:
        server.kill9()


def test_anomaly_flags_new_patterns_and_http_errors(loaded):
    _, logs, base = loaded
    group = "/app/anomaly"
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="web")
    events = []
    for s in range(80):
        status = 503 if s in (60, 62, 64, 66) else 200
        events.append({"timestamp": base + s * 1000, "message": f"GET /health status {status}"})
    for s in (70, 75):
        events.append({"timestamp": base + s * 1000 + 1, "message": "[ERROR] out of memory"})
    events.sort(key=lambda e: e["timestamp"])
    logs.put_log_events(logGroupName=group, logStreamName="web", logEvents=events)
    r = wait(logs, start(logs, "pattern @message | anomaly", base, logGroupName=group))
    assert r["status"] == "Complete"
    got = rows(r)
    # Newest anomaly first: the new pattern (70 s) before the 503s (from 60 s).
    assert [(g["@pattern"], g["@anomalyType"], g["@priority"]) for g in got] == [
        ("[ERROR] out of memory", "New pattern", "HIGH"),
        ("GET /health status <Number-1>", "HTTP error code", "HIGH"),
    ]
    t = time.gmtime((base + 60_000) / 1000)
    assert got[1]["@timestamp"] == time.strftime("%Y-%m-%d %H:%M:%S", t) + ".000"
    assert "503 in 4 of 40 events" in got[1]["@description"]
    assert [c["field"] for c in r["results"][0]] == [
        "@pattern", "@ratio", "@sampleCount", "@severityLabel",
        "@timestamp", "@anomalyType", "@priority", "@description",
    ]
