"""Subscription filters through boto3, delivered to a real HTTP receiver standing in for a Lambda
function (`[delivery.lambda]` maps the function's ARN to its URL): what it receives is what a
Lambda receives, `{"awslogs": {"data": base64(gzip(JSON))}}`, with CloudWatch's DATA_MESSAGE and
CONTROL_MESSAGE shapes. Delivery is at least once, in order per stream: a receiver that fails and
a server killed with SIGKILL only delay it.
"""
import base64
import gzip
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from botocore.exceptions import ClientError

from conftest import Server

ARN = "arn:aws:lambda:us-east-1:000000000000:function:ship"


class Receiver:
    """An HTTP endpoint that records the CloudWatch Logs messages it is sent, or fails on demand."""

    def __init__(self):
        self.messages = []
        self.failing = False
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.failing:
                    self.send_response(500)
                    self.end_headers()
                    return
                data = json.loads(body)["awslogs"]["data"]
                message = json.loads(gzip.decompress(base64.b64decode(data)))
                with receiver.lock:
                    receiver.messages.append(message)
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def data(self):
        with self.lock:
            return [m for m in self.messages if m["messageType"] == "DATA_MESSAGE"]

    def events(self):
        """(stream, id, message) of every delivered event, in arrival order."""
        return [(m["logStream"], e["id"], e["message"]) for m in self.data() for e in m["logEvents"]]

    def wait_events(self, count, timeout=30):
        deadline = time.time() + timeout
        while len(self.events()) < count:
            assert time.time() < deadline, f"{len(self.events())} of {count} events delivered"
            time.sleep(0.05)
        return self.events()


def config(receiver):
    return f"""
[storage]
flush_age = 1
maintenance_interval = 1

[delivery]
backoff_min_ms = 20
backoff_max_ms = 300

[delivery.lambda]
"{ARN}" = "{receiver.url}"
"""


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.http.shutdown()


def put(logs, group, stream, messages):
    t = int(time.time() * 1000)
    logs.put_log_events(logGroupName=group, logStreamName=stream,
                        logEvents=[{"timestamp": t, "message": m} for m in messages])


def code(excinfo):
    return excinfo.value.response["Error"]["Code"]


def test_subscription_filters_deliver_matching_events_as_a_lambda_receives_them(tmp_path, receiver):
    server = Server(tmp_path / "data", config(receiver)).start()
    try:
        logs = server.client()
        g = "/sub/app"
        logs.create_log_group(logGroupName=g)
        for s in ["a", "b"]:
            logs.create_log_stream(logGroupName=g, logStreamName=s)
        put(logs, g, "a", ["ERROR before the filter"])

        logs.put_subscription_filter(logGroupName=g, filterName="errors", filterPattern="ERROR",
                                     destinationArn=ARN)
        # The test message CloudWatch sends when a filter is created.
        control = [m for m in receiver.messages if m["messageType"] == "CONTROL_MESSAGE"]
        assert len(control) == 1 and control[0]["owner"] == "CloudwatchLogs"
        assert control[0]["logEvents"][0]["message"].startswith("CWL CONTROL MESSAGE")
        (f,) = logs.describe_subscription_filters(logGroupName=g)["subscriptionFilters"]
        assert (f["filterName"], f["logGroupName"], f["filterPattern"], f["destinationArn"], f["distribution"]) == \
            ("errors", g, "ERROR", ARN, "ByLogStream")
        assert f["creationTime"] > 0

        put(logs, g, "a", ["INFO fine", "ERROR one", "ERROR two"])
        put(logs, g, "b", ["ERROR in b"])
        events = receiver.wait_events(3)
        messages = receiver.data()
        assert {(m["owner"], m["logGroup"], tuple(m["subscriptionFilters"])) for m in messages} == \
            {("000000000000", g, ("errors",))}
        by_stream = {s: [m for (st, _, m) in events if st == s] for s in ["a", "b"]}
        assert by_stream == {"a": ["ERROR one", "ERROR two"], "b": ["ERROR in b"]}
        # Event ids are FilterLogEvents' ids: a receiver can recognise a redelivery.
        stored = {e["message"]: e["eventId"] for e in logs.filter_log_events(logGroupName=g)["events"]}
        assert all(stored[m] == i for (_, i, m) in events)
        time.sleep(0.5)
        assert len(receiver.events()) == 3  # nothing else: the event before the filter is not sent
        # /metrics: what was delivered, and no lag once caught up.
        from test_metrics import scrape
        m = scrape(server)
        labels = (("filter", "errors"), ("log_group", g))
        assert m[("logwell_subscription_delivered_events_total", labels)] == 3
        assert m[("logwell_subscription_lag_seconds", labels)] == 0
        assert m[("logwell_subscription_lag_events", labels)] == 0
        # While the destination fails, the lag in events is what is put after the cursor, matching
        # or not; it returns to 0 once the destination takes them.
        receiver.failing = True
        put(logs, g, "a", ["ERROR while down", "INFO while down"])
        time.sleep(0.5)
        m = scrape(server)
        assert m[("logwell_subscription_lag_events", labels)] == 2
        assert m[("logwell_subscription_delivery_errors_total", labels)] > 0
        receiver.failing = False
        receiver.wait_events(4)
        deadline = time.time() + 10
        while scrape(server)[("logwell_subscription_lag_events", labels)] != 0:
            assert time.time() < deadline
            time.sleep(0.05)

        # Bad input, as CloudWatch answers it.
        with pytest.raises(ClientError) as e:
            logs.put_subscription_filter(logGroupName=g, filterName="x", filterPattern="",
                                         destinationArn="arn:aws:lambda:us-east-1:000000000000:function:nowhere")
        assert code(e) == "InvalidParameterException"
        with pytest.raises(ClientError) as e:
            logs.put_subscription_filter(logGroupName=g, filterName="x", filterPattern="{ $.a = ", destinationArn=ARN)
        assert code(e) == "InvalidParameterException"
        with pytest.raises(ClientError) as e:
            logs.put_subscription_filter(logGroupName="/sub/missing", filterName="x", filterPattern="", destinationArn=ARN)
        assert code(e) == "ResourceNotFoundException"
        logs.put_subscription_filter(logGroupName=g, filterName="everything", filterPattern="", destinationArn=ARN)
        with pytest.raises(ClientError) as e:
            logs.put_subscription_filter(logGroupName=g, filterName="third", filterPattern="", destinationArn=ARN)
        assert code(e) == "LimitExceededException"
        with pytest.raises(ClientError) as e:
            logs.delete_subscription_filter(logGroupName=g, filterName="nope")
        assert code(e) == "ResourceNotFoundException"
        names = [f["filterName"] for f in logs.describe_subscription_filters(logGroupName=g)["subscriptionFilters"]]
        assert names == ["errors", "everything"]
        logs.delete_subscription_filter(logGroupName=g, filterName="everything")
        names = [f["filterName"] for f in logs.describe_subscription_filters(logGroupName=g)["subscriptionFilters"]]
        assert names == ["errors"]
    finally:
        server.kill9()


def test_delivery_loses_nothing_when_the_receiver_fails_and_the_server_is_killed(tmp_path, receiver):
    server = Server(tmp_path / "data", config(receiver)).start()
    try:
        logs = server.client()
        g = "/sub/faults"
        logs.create_log_group(logGroupName=g)
        for s in ["a", "b"]:
            logs.create_log_stream(logGroupName=g, logStreamName=s)
        logs.put_subscription_filter(logGroupName=g, filterName="keep", filterPattern="-skip", destinationArn=ARN)
        expected = {"a": [], "b": []}
        n = 0
        for round_ in range(6):
            # Even rounds: the receiver fails while events are put, and the server is killed with
            # them undelivered. Odd rounds: the receiver works, and the kill lands mid-delivery.
            receiver.failing = round_ % 2 == 0
            for _ in range(4):
                for s in ["a", "b"]:
                    batch = [f"{s} {n + i:05d}" + (" skip" if (n + i) % 5 == 0 else "") for i in range(50)]
                    put(logs, g, s, batch)
                    expected[s] += [m for m in batch if not m.endswith("skip")]
                    n += 50
            time.sleep(0.1 if round_ % 2 == 0 else 0.02)
            server.kill9()
            receiver.failing = False
            server.start()
            logs = server.client()
        total = sum(len(v) for v in expected.values())
        deadline = time.time() + 60
        while True:
            delivered = receiver.events()
            firsts = {}
            for (s, i, m) in delivered:
                firsts.setdefault((s, i), m)
            if len(firsts) >= total:
                break
            assert time.time() < deadline, f"{len(firsts)} of {total} delivered"
            time.sleep(0.1)
        for s in ["a", "b"]:
            # Every acknowledged matching event, in its stream's order (redeliveries aside).
            seen, order = set(), []
            for (st, i, m) in delivered:
                if st == s and i not in seen:
                    seen.add(i)
                    order.append(m)
            assert order == expected[s]
        duplicates = len(delivered) - len(firsts)
        print(f"delivered {total} events, {duplicates} delivered again after a kill")
    finally:
        server.kill9()
