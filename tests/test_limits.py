"""Memory stays bounded under a flood: 1,000 concurrent slow uploads of ~1 MB bodies while a
StartQuery loop runs. The server refuses what is over its limits with ThrottlingException, drops
connections that stall, keeps answering, loses nothing it acknowledged, and its peak RSS stays
near its configured budget. Loopback only; bounded in count and time."""
import json
import socket
import threading
import time

from botocore.exceptions import ClientError

from conftest import Server

GROUP = "/flood"
UPLOADS = 1000
EVENTS_PER_UPLOAD = 100
MESSAGE_BYTES = 10_000
# In-flight request bytes + buffered events, the two ingest budgets the config below sets.
BUDGET_MB = 64 + 64

CONFIG = """
[storage]
flush_age = 1
maintenance_interval = 1
max_buffered_bytes = 67108864

[limits]
max_concurrent_requests = 256
max_request_bytes_in_flight = 67108864
header_read_timeout_secs = 2
body_read_timeout_secs = 4
"""


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def put_body(upload: int) -> bytes:
    now = int(time.time() * 1000)
    events = [{"timestamp": now, "message": f"id={upload}-{i} " + "x" * MESSAGE_BYTES}
              for i in range(EVENTS_PER_UPLOAD)]
    return json.dumps({"logGroupName": GROUP, "logStreamName": "s", "logEvents": events}).encode()


def slow_upload(port: int, upload: int, results: dict, lock: threading.Lock):
    """Sends a ~1 MB PutLogEvents in 8 pieces over ~2 s; records the HTTP status and error type."""
    body = put_body(upload)
    head = (f"POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/x-amz-json-1.1\r\n"
            f"X-Amz-Target: Logs_20140328.PutLogEvents\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode()
    outcome = "no answer"
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            s.sendall(head)
            piece = len(body) // 8 + 1
            for k in range(8):
                try:
                    s.sendall(body[k * piece:(k + 1) * piece])
                except OSError:
                    break  # the server answered early (throttled) and closed
                time.sleep(0.25)
            answer = b""
            while chunk := s.recv(65536):
                answer += chunk
            status = int(answer.split(b" ", 2)[1]) if answer else 0
            kind = ""
            if b"__type" in answer:
                kind = json.loads(answer.split(b"\r\n\r\n", 1)[1])["__type"]
            outcome = f"{status} {kind}".strip()
    except OSError as e:
        outcome = f"error {type(e).__name__}"
    with lock:
        results[upload] = outcome


def test_a_flood_of_slow_large_uploads_stays_within_the_memory_budget(tmp_path):
    server = Server(tmp_path / "data", CONFIG).start()
    try:
        c = server.client()
        c.create_log_group(logGroupName=GROUP)
        c.create_log_stream(logGroupName=GROUP, logStreamName="s")
        base_rss = peak_rss_mb(server.proc.pid)

        results, lock = {}, threading.Lock()
        stop = threading.Event()
        queries = {"done": 0, "throttled": 0}

        def query_loop():
            qc = server.client()
            while not stop.is_set():
                now = int(time.time())
                try:
                    qid = qc.start_query(logGroupName=GROUP, startTime=now - 600, endTime=now + 60,
                                         queryString="stats count(*) as n")["queryId"]
                    while qc.get_query_results(queryId=qid)["status"] in ("Scheduled", "Running"):
                        time.sleep(0.05)
                    queries["done"] += 1
                except ClientError as e:
                    assert e.response["Error"]["Code"] == "ThrottlingException", e
                    queries["throttled"] += 1
                    time.sleep(0.1)

        q = threading.Thread(target=query_loop, daemon=True)
        q.start()
        threads = [threading.Thread(target=slow_upload, args=(server.port, i, results, lock), daemon=True)
                   for i in range(UPLOADS)]
        started = time.time()
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        flood_s = time.time() - started

        # A stalled client (headers never finished) is dropped after the header timeout.
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
            s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\n")
            t0 = time.time()
            try:
                answer = s.recv(1024)
            except socket.timeout:
                answer = None
            stalled_closed_after = time.time() - t0
            assert answer is not None and (answer == b"" or answer.startswith(b"HTTP/1.1 408")), answer
        stop.set()
        q.join(30)

        outcomes = {}
        for o in results.values():
            outcomes[o] = outcomes.get(o, 0) + 1
        peak = peak_rss_mb(server.proc.pid)
        print(f"\nflood: {UPLOADS} uploads in {flood_s:.1f} s, outcomes {outcomes}, queries {queries}, "
              f"RSS before {base_rss:.0f} MB, peak {peak:.0f} MB (budget {BUDGET_MB} MB + base)")
        assert len(results) == UPLOADS
        assert outcomes.get("200", 0) > 0, outcomes
        assert outcomes.get("400 ThrottlingException", 0) > 0, f"nothing was throttled: {outcomes}"
        assert stalled_closed_after < 8, "a stalled connection was kept open"
        assert queries["done"] > 0, "no query completed during the flood"
        # Requests and buffered events within their budgets; the rest is flush and query working
        # memory and allocator slack (measured: 208 MB on a 25 MB base; 523 MB without [limits]).
        assert peak < base_rss + BUDGET_MB * 2, f"peak RSS {peak:.0f} MB is far above the budget"

        # Nothing acknowledged is lost, nothing is stored twice; the server still answers.
        accepted = [u for u, o in results.items() if o == "200"]
        counts = {}
        for page in c.get_paginator("filter_log_events").paginate(logGroupName=GROUP, filterPattern='"id="'):
            for e in page["events"]:
                key = e["message"].split(" ", 1)[0]
                counts[key] = counts.get(key, 0) + 1
        want = {f"id={u}-{i}" for u in accepted for i in range(EVENTS_PER_UPLOAD)}
        assert [k for k in want if counts.get(k) != 1] == []
        assert all(n == 1 for n in counts.values())
    finally:
        server.kill9()
