"""The project's own `logwell` client commands against a running server."""
import datetime
import subprocess
import time

from conftest import logwell_bin


def run(server, *args, input=None, check=True):
    return subprocess.run([logwell_bin(), *args, "--endpoint", server.endpoint], capture_output=True, text=True,
                          input=input, check=check, timeout=120)


def iso(ms: int) -> str:
    d = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def all_events(logs, group):
    return [e for page in logs.get_paginator("filter_log_events").paginate(logGroupName=group)
            for e in page["events"]]


def test_logwell_put_groups_streams_get(server, logs, tmp_path):
    lines = [f"line {i:05d} user=u{i % 7} action={'login' if i % 3 else 'logout'}" for i in range(20_000)]
    f = tmp_path / "app.log"
    f.write_text("\n".join(lines) + "\n")

    t0 = int(time.time() * 1000)
    r = run(server, "put", "/cli/app", "web-1", "--create", "--file", str(f))
    t1 = int(time.time() * 1000)
    assert "20000" in r.stderr, r.stderr  # it reports how many events it sent

    # More than one PutLogEvents call's worth (10,000 events), all stored, in file order.
    stored = all_events(logs, "/cli/app")
    assert len(stored) == 20_000
    assert [e["message"] for e in stored] == lines
    assert all(t0 - 1000 <= e["timestamp"] <= t1 + 1000 for e in stored)

    # --create on an existing group and stream appends; stdin works too.
    run(server, "put", "/cli/app", "web-2", "--create", input="from stdin 1\nfrom stdin 2\n")
    run(server, "put", "/cli/app", "web-2", "--create", input="from stdin 3\n")
    w2 = logs.get_log_events(logGroupName="/cli/app", logStreamName="web-2", startFromHead=True)["events"]
    assert [e["message"] for e in w2] == ["from stdin 1", "from stdin 2", "from stdin 3"]
    logs.create_log_group(logGroupName="/cli/other")
    logs.put_retention_policy(logGroupName="/cli/other", retentionInDays=14)

    out = run(server, "groups").stdout.splitlines()
    rows = [line.split("\t") for line in out]
    assert [r[0] for r in rows] == ["/cli/app", "/cli/other"]
    assert rows[0][1] == "never expire" and rows[1][1] == "14 days"
    assert [r[0] for r in (line.split("\t") for line in run(server, "groups", "--prefix", "/cli/o").stdout.splitlines())] \
        == ["/cli/other"]

    out = run(server, "streams", "/cli/app").stdout.splitlines()
    streams = {s["logStreamName"]: s for s in logs.describe_log_streams(logGroupName="/cli/app")["logStreams"]}
    assert [line.split("\t")[0] for line in out] == ["web-1", "web-2"]
    for line in out:
        name, last = line.split("\t")
        assert last == iso(streams[name]["lastEventTimestamp"])

    out = run(server, "get", "/cli/app", "web-1").stdout.splitlines()
    assert len(out) == 20_000
    assert [line.split(" ", 1)[1] for line in out] == lines
    assert [line.split(" ", 1)[0] for line in out] == [iso(e["timestamp"]) for e in stored]
    out = run(server, "get", "/cli/app", "web-1", "--limit", "5").stdout.splitlines()
    assert [line.split(" ", 1)[1] for line in out] == lines[:5]


def test_logwell_cli_errors(server):
    r = run(server, "streams", "no-such-group", check=False)
    assert r.returncode != 0
    assert "ResourceNotFoundException" in r.stderr
    r = run(server, "put", "no-such-group", "s", input="x\n", check=False)
    assert r.returncode != 0
    assert "ResourceNotFoundException" in r.stderr
    r = run(server, "get", "g", "s", check=False)
    assert r.returncode != 0 and "ResourceNotFoundException" in r.stderr


def test_logwell_query_table_json_csv(server, logs):
    lines = "\n".join(f'{{"level": "{"ERROR" if i % 4 == 0 else "INFO"}", "ms": {i}}}' for i in range(40))
    run(server, "put", "/cli/q", "s1", "--create", input=lines + "\n")

    r = run(server, "query", "-g", "/cli/q", "--since", "10m",
            "stats count(*) as n by level | sort n desc")
    out = r.stdout.splitlines()
    assert out[0].split(" | ") == ["level", "n"]
    assert [l.split(" | ") for l in out[2:]] == [["INFO ", "30"], ["ERROR", "10"]]
    assert "2 rows" in r.stderr

    r = run(server, "query", "-g", "/cli/q", "--output", "json",
            "filter level = 'ERROR' | fields ms | sort ms asc | limit 3")
    import json
    assert [row["ms"] for row in json.loads(r.stdout)] == ["0", "4", "8"]

    r = run(server, "query", "--sql", "--output", "csv",
            "SELECT count(*) AS n, max(`@logStream`) AS s FROM `/cli/q`")
    assert r.stdout.splitlines() == ["n,s", "40,s1"]

    r = run(server, "query", "-g", "/cli/q", "fields (", check=False)
    assert r.returncode != 0 and "MalformedQueryException" in r.stderr
