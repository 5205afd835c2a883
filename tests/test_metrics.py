"""Metric filters through boto3 and `GET /metrics` read with Prometheus' own Python parser: the values
and dimensions metric filters extract from put events, CloudWatch's errors for bad definitions, and
logwell's own metrics (ingest, requests, storage, queries, live tail sessions).
"""
import json
import time
import urllib.request

import pytest
from botocore.exceptions import ClientError
from prometheus_client.parser import text_string_to_metric_families

from conftest import Server
from test_subscriptions import code

FAST = """
[storage]
flush_age = 1
maintenance_interval = 1
"""


def scrape(server):
    with urllib.request.urlopen(f"{server.endpoint}/metrics", timeout=10) as r:
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = r.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def series(samples, name, **labels):
    """Samples of `name` whose labels include `labels`: {other labels: value}."""
    out = {}
    for (n, ls), v in samples.items():
        d = dict(ls)
        if n == name and all(d.get(k) == v2 for k, v2 in labels.items()):
            out[tuple(sorted((k, x) for k, x in d.items() if k not in labels))] = v
    return out


def wait_for(predicate, timeout=20):
    deadline = time.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.time() < deadline, "timed out"
        time.sleep(0.1)


def test_metric_filters_and_own_metrics_on_the_prometheus_endpoint(tmp_path):
    server = Server(tmp_path / "data", FAST).start()
    try:
        logs = server.client()
        g = "/metrics/app"
        logs.create_log_group(logGroupName=g)
        logs.create_log_stream(logGroupName=g, logStreamName="web")
        logs.put_metric_filter(
            logGroupName=g, filterName="slow-5xx", filterPattern="{ $.status >= 500 }",
            metricTransformations=[{"metricName": "ServerErrorLatency", "metricNamespace": "App",
                                    "metricValue": "$.latency", "unit": "Milliseconds",
                                    "dimensions": {"Method": "$.method"}}])
        logs.put_metric_filter(
            logGroupName=g, filterName="errors", filterPattern="ERROR",
            metricTransformations=[{"metricName": "ErrorCount", "metricNamespace": "App",
                                    "metricValue": "1", "defaultValue": 0}])
        zero = series(scrape(server), "logwell_metric_filter_sum", filter="errors")
        assert list(zero.values()) == [0.0], "a filter with a default value has its series from the start"
        logs.put_metric_filter(
            logGroupName=g, filterName="bytes", filterPattern="[ip, user, status = 2*, size]",
            metricTransformations=[{"metricName": "Bytes", "metricNamespace": "Web",
                                    "metricValue": "$size", "dimensions": {"status": "$status"}}])

        # Definitions, as DescribeMetricFilters shows them.
        names = [f["filterName"] for f in logs.describe_metric_filters(logGroupName=g)["metricFilters"]]
        assert names == ["bytes", "errors", "slow-5xx"]
        (f,) = logs.describe_metric_filters(logGroupName=g, filterNamePrefix="slow")["metricFilters"]
        assert f["filterPattern"] == "{ $.status >= 500 }" and f["creationTime"] > 0
        assert f["metricTransformations"] == [{"metricName": "ServerErrorLatency", "metricNamespace": "App",
                                               "metricValue": "$.latency", "unit": "Milliseconds",
                                               "dimensions": {"Method": "$.method"}}]
        by_metric = logs.describe_metric_filters(metricName="ErrorCount", metricNamespace="App")["metricFilters"]
        assert [f["filterName"] for f in by_metric] == ["errors"]

        # Bad definitions, as CloudWatch answers them.
        bad = [
            ("[ip, user]", {"metricValue": "$bytes"}, "InvalidParameterException"),      # undefined field
            ("{ $.a = ", {"metricValue": "1"}, "InvalidParameterException"),            # pattern
            ("{ $.a = 1 }", {"metricValue": "1", "defaultValue": 0, "dimensions": {"A": "$.a"}},
             "InvalidParameterException"),                                              # default + dims
        ]
        for pattern, t, want in bad:
            with pytest.raises(ClientError) as e:
                logs.put_metric_filter(logGroupName=g, filterName="bad", filterPattern=pattern,
                                       metricTransformations=[{"metricName": "M", "metricNamespace": "N", **t}])
            assert code(e) == want, pattern
        with pytest.raises(ClientError) as e:
            logs.put_metric_filter(logGroupName="/metrics/missing", filterName="x", filterPattern="",
                                   metricTransformations=[{"metricName": "M", "metricNamespace": "N", "metricValue": "1"}])
        assert code(e) == "ResourceNotFoundException"
        with pytest.raises(ClientError) as e:
            logs.delete_metric_filter(logGroupName=g, filterName="nope")
        assert code(e) == "ResourceNotFoundException"
        with pytest.raises(ClientError) as e:
            logs.describe_metric_filters(filterNamePrefix="x")
        assert code(e) == "InvalidParameterException"

        now = int(time.time() * 1000)
        events = [
            json.dumps({"status": 503, "latency": 120.5, "method": "GET"}),
            json.dumps({"status": 500, "latency": 30, "method": "POST"}),
            json.dumps({"status": 502, "latency": 9.5, "method": "GET"}),
            json.dumps({"status": 200, "latency": 999, "method": "GET"}),
            json.dumps({"status": 504, "latency": "n/a", "method": "GET"}),  # not a number: not counted
            "ERROR disk full",
            "ERROR again",
            "10.0.0.1 alice 200 512",
            "10.0.0.2 bob 204 100",
            "10.0.0.3 carol 404 7",
        ]
        logs.put_log_events(logGroupName=g, logStreamName="web",
                            logEvents=[{"timestamp": now, "message": m} for m in events])

        def ready():
            s = scrape(server)
            return s if series(s, "logwell_metric_filter_count", filter="bytes") else None
        s = wait_for(ready)
        latency_sum = series(s, "logwell_metric_filter_sum", log_group=g, filter="slow-5xx",
                             namespace="App", metric="ServerErrorLatency", unit="Milliseconds")
        latency_count = series(s, "logwell_metric_filter_count", filter="slow-5xx")
        assert latency_sum == {(("Method", "GET"),): 130.0, (("Method", "POST"),): 30.0}
        assert latency_count == {(("Method", "GET"), ("log_group", g), ("metric", "ServerErrorLatency"),
                                  ("namespace", "App"), ("unit", "Milliseconds")): 2.0,
                                 (("Method", "POST"), ("log_group", g), ("metric", "ServerErrorLatency"),
                                  ("namespace", "App"), ("unit", "Milliseconds")): 1.0}
        # Matching events only (a default value is what CloudWatch reports for periods without a
        # match: here the series exists from the filter's creation, at 0).
        assert series(s, "logwell_metric_filter_sum", filter="errors", unit="None") == {
            (("log_group", g), ("metric", "ErrorCount"), ("namespace", "App")): 2.0}
        assert series(s, "logwell_metric_filter_count", filter="errors", unit="None") == {
            (("log_group", g), ("metric", "ErrorCount"), ("namespace", "App")): 2.0}
        assert series(s, "logwell_metric_filter_sum", filter="bytes", metric="Bytes", log_group=g) == {
            (("namespace", "Web"), ("status", "200"), ("unit", "None")): 512.0,
            (("namespace", "Web"), ("status", "204"), ("unit", "None")): 100.0}

        # logwell's own metrics.
        assert s[("logwell_ingested_events_total", ())] == len(events)
        assert s[("logwell_ingested_bytes_total", ())] == sum(len(m) + 26 for m in events)
        assert s[("logwell_request_duration_seconds_count",
                  (("operation", "PutLogEvents"), ("outcome", "ok")))] == 1
        assert s[("logwell_request_duration_seconds_count",
                  (("operation", "DeleteMetricFilter"), ("outcome", "ResourceNotFoundException")))] == 1
        assert s[("logwell_log_groups", ())] == 1
        assert s[("logwell_live_tail_sessions", ())] == 0
        assert s[("logwell_wal_commit_seconds_count", ())] >= 1
        query_id = logs.start_query(logGroupName=g, startTime=now // 1000 - 60, endTime=now // 1000 + 60,
                                    queryString="stats count(*)")["queryId"]
        wait_for(lambda: logs.get_query_results(queryId=query_id)["status"] == "Complete")
        s = wait_for(lambda: (lambda s: s if s.get(("logwell_segments", ()), 0) >= 1 else None)(scrape(server)))
        assert s[("logwell_query_duration_seconds_count", (("status", "Complete"),))] == 1
        assert s[("logwell_segment_events", ())] == len(events)
        assert s[("logwell_flush_seconds_count", ())] >= 1

        # A deleted filter's series go with it.
        logs.delete_metric_filter(logGroupName=g, filterName="bytes")
        s = scrape(server)
        assert not series(s, "logwell_metric_filter_count", filter="bytes")
        assert series(s, "logwell_metric_filter_count", filter="errors")
        # Definitions survive a restart (values, like any Prometheus counter, start again).
        server.restart()
        logs = server.client()
        names = [f["filterName"] for f in logs.describe_metric_filters(logGroupName=g)["metricFilters"]]
        assert names == ["errors", "slow-5xx"]
        logs.put_log_events(logGroupName=g, logStreamName="web",
                            logEvents=[{"timestamp": int(time.time() * 1000), "message": "ERROR after restart"}])
        s = wait_for(lambda: (lambda s: s if 1.0 in series(s, "logwell_metric_filter_sum", filter="errors").values()
                                         else None)(scrape(server)))
        assert list(series(s, "logwell_metric_filter_sum", filter="errors").values()) == [1.0]
    finally:
        server.kill9()
