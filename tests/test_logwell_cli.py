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


def test_logwell_tail_follow_scrollback_then_live_without_gap_or_duplicate(server, logs):
    import signal
    import threading

    g = "/cli/tail"
    logs.create_log_group(logGroupName=g)
    logs.create_log_stream(logGroupName=g, logStreamName="a")
    now = int(time.time() * 1000)
    logs.put_log_events(logGroupName=g, logStreamName="a",
                        logEvents=[{"timestamp": now - 60_000 + i, "message": f"old {i}"} for i in range(3)])
    # Writers put events as fast as they are answered before, during and after the tail's start,
    # so events arrive while the tail switches from stored to live ones.
    stop = threading.Event()
    written = {w: [] for w in range(4)}
    for w in written:
        logs.create_log_stream(logGroupName=g, logStreamName=f"w{w}")

    def writer(w):
        client = server.client()
        n = 0
        while not stop.is_set() or n < 50:
            message = f"w{w} {n:05d}"
            client.put_log_events(logGroupName=g, logStreamName=f"w{w}",
                                  logEvents=[{"timestamp": int(time.time() * 1000), "message": message}])
            written[w].append(message)
            n += 1

    threads = [threading.Thread(target=writer, args=(w,)) for w in written]
    for t in threads:
        t.start()
    while min(len(v) for v in written.values()) < 20:
        time.sleep(0.01)
    proc = subprocess.Popen([logwell_bin(), "tail", g, "--since", "10m", "--follow", "--color", "never",
                             "--endpoint", server.endpoint], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    time.sleep(1.5)
    stop.set()
    for t in threads:
        t.join()
    last = {v[-1] for v in written.values()}
    lines = []
    deadline = time.time() + 20
    while last - {l.split(" ", 1)[1] for l in lines}:
        assert time.time() < deadline, (lines[-5:], last)
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        lines.append(line.rstrip("\n"))
    proc.send_signal(signal.SIGINT)
    assert proc.wait(10) == 0, proc.stderr.read()
    messages = [l.split(" ", 1)[1] for l in lines]
    assert messages[:3] == [f"old {i}" for i in range(3)]
    # Every event exactly once, each writer's in the order it wrote them.
    duplicates = sorted({m for m in messages if messages.count(m) > 1})
    assert not duplicates, duplicates
    for w, sent in written.items():
        assert [m for m in messages if m.startswith(f"w{w} ")] == sent, w
    # Short format: the event's time, then its message.
    assert lines[0] == f"{iso(now - 60_000)} old 0"


def test_logwell_tail_filters_streams_and_prints_json(server, logs):
    import json
    g = "/cli/tail-json"
    logs.create_log_group(logGroupName=g)
    for s in ["web-1", "db-1"]:
        logs.create_log_stream(logGroupName=g, logStreamName=s)
    now = int(time.time() * 1000)
    for s in ["web-1", "db-1"]:
        logs.put_log_events(logGroupName=g, logStreamName=s, logEvents=[
            {"timestamp": now - 3000, "message": json.dumps({"level": "error", "from": s})},
            {"timestamp": now - 2000, "message": f"plain ERROR line from {s}"},
            {"timestamp": now - 1000, "message": json.dumps({"level": "info", "from": s})},
        ])
    out = run(server, "tail", g, "--since", "1h", "--filter", "?ERROR ?error", "--stream", "web",
              "--format", "json").stdout
    decoder, pos, objects = json.JSONDecoder(), 0, []
    while pos < len(out.strip()):
        obj, end = decoder.raw_decode(out, pos)
        objects.append(obj)
        pos = end + 1
    assert [(o["logGroup"], o["logStream"], o["message"]) for o in objects] == [
        (g, "web-1", {"level": "error", "from": "web-1"}),
        (g, "web-1", "plain ERROR line from web-1"),
    ]
    assert "\n  " in out  # pretty-printed
    # Colour by level when asked for.
    coloured = run(server, "tail", g, "--since", "1h", "--stream", "db", "--color", "always").stdout
    assert "\x1b[31m" in coloured and "plain ERROR line from db-1" in coloured
