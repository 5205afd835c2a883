"""Export tasks through boto3 and `logwell export`: a time range of a log group written to a bucket
in CloudWatch's layout (`PREFIX/TASK/STREAM/000000.gz`, gzip lines `<ISO-8601> <message>`) that
matches GetLogEvents exactly, or as Parquet that DuckDB reads; tasks run in the background, show
progress, can be cancelled, allow one active task, and finish after logwell is killed mid-way.
"""
import gzip
import subprocess
import time

import duckdb
import pytest
from botocore.exceptions import ClientError

from conftest import Server, logwell_bin
from test_durability import s3_config, s3_server  # noqa: F401  (fixture)
from test_subscriptions import code

FAST = """
[storage]
flush_age = 1
maintenance_interval = 1
"""


def iso(ms):
    t = time.gmtime(ms // 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{ms % 1000:03d}Z"


def stream_lines(logs, group, stream, start, end):
    """What GetLogEvents returns for [start, end], as export lines."""
    lines, token = [], None
    while True:
        kw = {"nextToken": token} if token else {}
        page = logs.get_log_events(logGroupName=group, logStreamName=stream, startTime=start, endTime=end + 1,
                                   startFromHead=True, **kw)
        lines += [f"{iso(e['timestamp'])} {e['message']}" for e in page["events"]]
        if page["nextForwardToken"] == token:
            return lines
        token = page["nextForwardToken"]


def wait_task(logs, task_id, timeout=60, until=("COMPLETED", "FAILED", "CANCELLED")):
    deadline = time.time() + timeout
    while True:
        (t,) = logs.describe_export_tasks(taskId=task_id)["exportTasks"]
        if t["status"]["code"] in until:
            return t
        assert time.time() < deadline, f"task still {t['status']}"
        time.sleep(0.05)


def fill(logs, group, streams, n, t0):
    for s in streams:
        logs.create_log_stream(logGroupName=group, logStreamName=s)
        for start in range(0, n, 1000):
            logs.put_log_events(logGroupName=group, logStreamName=s, logEvents=[
                {"timestamp": t0 + i * 10, "message": f"{s} event {i} " + ("ERROR" if i % 3 == 0 else "ok")}
                for i in range(start, min(n, start + 1000))])


def test_export_writes_cloudwatch_layout_matching_get_log_events(tmp_path):
    data = tmp_path / "data"
    bucket = data / "buckets" / "exports"
    bucket.mkdir(parents=True)
    server = Server(data, FAST).start()
    try:
        logs = server.client()
        g = "/export/app"
        logs.create_log_group(logGroupName=g)
        t0 = int(time.time() * 1000) - 600_000
        fill(logs, g, ["web-1", "web-2", "db"], 3000, t0)
        time.sleep(2.5)  # most of it flushed to segments; more goes to the memtable
        fill(logs, g, ["web-3"], 500, t0)
        # Part of every stream's range (the end may not be before the group was created).
        frm, to = t0 + 2_000, int(time.time() * 1000)
        task_id = logs.create_export_task(taskName="daily", logGroupName=g, logStreamNamePrefix="web-",
                                          fromTime=frm, to=to, destination="exports",
                                          destinationPrefix="exp")["taskId"]
        t = wait_task(logs, task_id)
        assert t["status"]["code"] == "COMPLETED", t["status"]
        assert (t["taskName"], t["logGroupName"], t["from"], t["to"], t["destination"], t["destinationPrefix"]) == \
            ("daily", g, frm, to, "exports", "exp")
        assert t["executionInfo"]["completionTime"] >= t["executionInfo"]["creationTime"]
        assert (bucket / "exp" / "aws-logs-write-test").read_text() == "Permission Check Successful"
        written = sorted(p.relative_to(bucket / "exp" / task_id).as_posix()
                         for p in (bucket / "exp" / task_id).rglob("*") if p.is_file())
        assert written == ["web-1/000000.gz", "web-2/000000.gz", "web-3/000000.gz"]  # not db: prefix
        for s in ["web-1", "web-2", "web-3"]:
            exported = gzip.decompress((bucket / "exp" / task_id / s / "000000.gz").read_bytes()).decode()
            expected = stream_lines(logs, g, s, frm, to)
            assert len(expected) > 100
            assert exported == "".join(line + "\n" for line in expected)

        # Bad input, as CloudWatch answers it.
        cases = [
            (dict(logGroupName=g, fromTime=frm, to=to, destination="no-such-bucket"), "InvalidParameterException"),
            (dict(logGroupName="/export/missing", fromTime=frm, to=to, destination="exports"), "ResourceNotFoundException"),
            (dict(logGroupName=g, fromTime=to, to=frm, destination="exports"), "InvalidParameterException"),
        ]
        for kwargs, want in cases:
            with pytest.raises(ClientError) as e:
                logs.create_export_task(**kwargs)
            assert code(e) == want, kwargs
        with pytest.raises(ClientError) as e:
            logs.cancel_export_task(taskId=task_id)
        assert code(e) == "InvalidOperationException"
        with pytest.raises(ClientError) as e:
            logs.cancel_export_task(taskId="00000000-0000-0000-0000-000000000000")
        assert code(e) == "ResourceNotFoundException"
        with pytest.raises(ClientError) as e:  # ends before the group was created
            logs.create_export_task(logGroupName=g, fromTime=t0 - 100_000, to=t0 - 50_000, destination="exports")
        assert code(e) == "InvalidParameterException"
        # A range with no events completes with nothing written.
        later = int(time.time() * 1000) + 3_600_000
        empty = logs.create_export_task(logGroupName=g, fromTime=later, to=later + 60_000,
                                        destination="exports")["taskId"]
        assert wait_task(logs, empty)["status"]["code"] == "COMPLETED"
        assert not (bucket / "exportedlogs" / empty).exists()
        listed = logs.describe_export_tasks(statusCode="COMPLETED")["exportTasks"]
        assert [t["taskId"] for t in listed] == [empty, task_id]  # newest first

        # The logwell CLI: Parquet, whole segments copied where they fit, read back by DuckDB.
        out = subprocess.run([logwell_bin(), "export", g, "--bucket", "exports", "--prefix", "pq", "--parquet",
                              "--since", "1h", "--endpoint", server.endpoint],
                             capture_output=True, text=True, timeout=120,
                             env={"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_REGION": "us-east-1",
                                  "PATH": "/usr/bin:/bin"})
        assert out.returncode == 0, out.stderr
        assert "exported 9500 events" in out.stdout and "MB/s" in out.stdout, out.stdout
        pq_task = out.stdout.split()[2]
        rows = duckdb.sql(f"""SELECT stream, count(*) AS n FROM read_parquet('{bucket}/pq/{pq_task}/*.parquet',
                              union_by_name=true) GROUP BY stream ORDER BY stream""").fetchall()
        assert rows == [("db", 3000), ("web-1", 3000), ("web-2", 3000), ("web-3", 500)]
    finally:
        server.kill9()


def test_export_tasks_survive_a_kill_are_cancellable_and_one_runs_at_a_time(tmp_path):
    data = tmp_path / "data"
    bucket = data / "buckets" / "exports"
    bucket.mkdir(parents=True)
    # One gzip file per event: a task takes seconds (each file is fsynced), long enough to act on.
    server = Server(data, FAST + "\n[delivery]\nexport_file_bytes = 1\n").start()
    try:
        logs = server.client()
        g = "/export/slow"
        logs.create_log_group(logGroupName=g)
        t0 = int(time.time() * 1000) - 600_000
        end = t0 + 600_000 + 60_000
        fill(logs, g, ["s"], 3000, t0)
        task_id = logs.create_export_task(logGroupName=g, fromTime=t0, to=end, destination="exports")["taskId"]
        t = wait_task(logs, task_id, until=("RUNNING",))
        with pytest.raises(ClientError) as e:
            logs.create_export_task(logGroupName=g, fromTime=t0, to=end, destination="exports")
        assert code(e) == "LimitExceededException"
        deadline = time.time() + 30
        while (list((bucket / "exportedlogs" / task_id / "s").glob("*.gz")) if
               (bucket / "exportedlogs" / task_id / "s").exists() else []).__len__() < 20:
            assert time.time() < deadline
            time.sleep(0.02)
        server.kill9()  # mid-task
        server.start()
        logs = server.client()
        t = wait_task(logs, task_id, timeout=120)
        assert t["status"]["code"] == "COMPLETED", t["status"]
        files = sorted((bucket / "exportedlogs" / task_id / "s").glob("*.gz"))
        assert len(files) == 3000
        exported = "".join(gzip.decompress(f.read_bytes()).decode() for f in files)
        assert exported == "".join(line + "\n" for line in stream_lines(logs, g, "s", t0, end))

        second = logs.create_export_task(logGroupName=g, fromTime=t0, to=end, destination="exports")["taskId"]
        wait_task(logs, second, until=("RUNNING",))
        logs.cancel_export_task(taskId=second)
        t = wait_task(logs, second, timeout=10)
        assert t["status"]["code"] == "CANCELLED"
        assert len(list((bucket / "exportedlogs" / second / "s").glob("*.gz"))) < 3000
    finally:
        server.kill9()


def test_export_to_a_bucket_of_the_s3_server(tmp_path, s3_server):  # noqa: F811
    endpoint, s3 = s3_server
    s3.create_bucket(Bucket="exports")
    server = Server(tmp_path / "data", s3_config(endpoint)).start()
    try:
        logs = server.client()
        g = "/export/s3"
        logs.create_log_group(logGroupName=g)
        t0 = int(time.time() * 1000) - 60_000
        end = t0 + 120_000
        fill(logs, g, ["a"], 200, t0)
        task_id = logs.create_export_task(logGroupName=g, fromTime=t0, to=end, destination="exports")["taskId"]
        assert wait_task(logs, task_id)["status"]["code"] == "COMPLETED"
        keys = {o["Key"] for o in s3.list_objects_v2(Bucket="exports")["Contents"]}
        assert keys == {"exportedlogs/aws-logs-write-test", f"exportedlogs/{task_id}/a/000000.gz"}
        body = s3.get_object(Bucket="exports", Key=f"exportedlogs/{task_id}/a/000000.gz")["Body"].read()
        assert gzip.decompress(body).decode() == \
            "".join(line + "\n" for line in stream_lines(logs, g, "a", t0, end))
    finally:
        server.kill9()


