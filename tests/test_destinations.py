"""Cross-account subscriptions through a CloudWatch Logs destination, with boto3 against two and three
logwell servers of different accounts: the recipient (222222222222) owns a destination whose target
is its central log group and whose access policy allows one sender account (111111111111); that
sender's subscription delivers its events into the central group, another account (333333333333)
is refused, and a recipient that is down, or a sender killed with SIGKILL, only delays delivery.
"""
import json
import time
import urllib.request

import pytest
from botocore.exceptions import ClientError

from conftest import Server
from test_subscriptions import code, put

RECIPIENT, SENDER, STRANGER = "222222222222", "111111111111", "333333333333"
DEST_ARN = f"arn:aws:logs:us-east-1:{RECIPIENT}:destination:central"


def config(account, recipient_endpoint=None):
    text = f'account_id = "{account}"\n\n[storage]\nflush_age = 1\nmaintenance_interval = 1\n\n' \
           "[delivery]\nbackoff_min_ms = 20\nbackoff_max_ms = 300\nrequest_timeout_secs = 2\n"
    if recipient_endpoint:
        text += f'\n[delivery.accounts]\n"{RECIPIENT}" = "{recipient_endpoint}"\n'
    return text


def policy(*accounts):
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "", "Effect": "Allow", "Principal": {"AWS": list(accounts)},
        "Action": "logs:PutSubscriptionFilter", "Resource": DEST_ARN}]})


def central_events(logs, stream):
    try:
        return [e["message"] for e in logs.get_log_events(logGroupName="/central", logStreamName=stream,
                                                          startFromHead=True, limit=10000)["events"]]
    except ClientError as e:
        if e.response["Error"]["Code"] == "ResourceNotFoundException":
            return []
        raise


def sender_metric(server, family):
    text = urllib.request.urlopen(f"{server.endpoint}/metrics", timeout=10).read().decode()
    for line in text.splitlines():
        if line.startswith(family + "{") and 'log_group="/app"' in line:
            return float(line.rsplit(" ", 1)[1])
    return None


def test_destination_policy_decides_which_accounts_deliver_into_a_central_log_group(tmp_path):
    recipient = Server(tmp_path / "recipient", config(RECIPIENT)).start()
    sender = Server(tmp_path / "sender", config(SENDER, recipient.endpoint)).start()
    stranger = Server(tmp_path / "stranger", config(STRANGER, recipient.endpoint)).start()
    try:
        central = recipient.client()
        central.create_log_group(logGroupName="/central")
        with pytest.raises(ClientError) as e:  # a target this server cannot reach
            central.put_destination(destinationName="x", roleArn="arn:aws:iam::222222222222:role/r",
                                    targetArn="arn:aws:kinesis:us-east-1:222222222222:stream/unmapped")
        assert code(e) == "InvalidParameterException"
        d = central.put_destination(destinationName="central", roleArn="arn:aws:iam::222222222222:role/r",
                                    targetArn=f"arn:aws:logs:us-east-1:{RECIPIENT}:log-group:/central")["destination"]
        assert (d["destinationName"], d["arn"]) == ("central", DEST_ARN) and d["creationTime"] > 0
        (listed,) = central.describe_destinations(DestinationNamePrefix="cen")["destinations"]
        assert listed["targetArn"].endswith(":log-group:/central") and "accessPolicy" not in listed
        for call, kwargs in [(central.put_destination_policy, {"destinationName": "nope", "accessPolicy": policy(SENDER)}),
                             (central.delete_destination, {"destinationName": "nope"})]:
            with pytest.raises(ClientError) as e:
                call(**kwargs)
            assert code(e) == "ResourceNotFoundException"
        with pytest.raises(ClientError) as e:
            central.put_destination_policy(destinationName="central", accessPolicy="{not json")
        assert code(e) == "InvalidParameterException"

        app = sender.client()
        app.create_log_group(logGroupName="/app")
        app.create_log_stream(logGroupName="/app", logStreamName="web")
        # No policy yet: no other account may subscribe.
        with pytest.raises(ClientError) as e:
            app.put_subscription_filter(logGroupName="/app", filterName="ship", filterPattern="",
                                        destinationArn=DEST_ARN)
        assert code(e) == "AccessDeniedException"
        assert f"User with accountId: {SENDER} is not authorized" in str(e.value)

        central.put_destination_policy(destinationName="central", accessPolicy=policy(SENDER))
        (listed,) = central.describe_destinations()["destinations"]
        assert json.loads(listed["accessPolicy"]) == json.loads(policy(SENDER))
        app.put_subscription_filter(logGroupName="/app", filterName="ship", filterPattern="-DEBUG",
                                    destinationArn=DEST_ARN)
        # The policy is checked both ways: another account is still refused.
        other = stranger.client()
        other.create_log_group(logGroupName="/other")
        with pytest.raises(ClientError) as e:
            other.put_subscription_filter(logGroupName="/other", filterName="ship", filterPattern="",
                                          destinationArn=DEST_ARN)
        assert code(e) == "AccessDeniedException"

        expected = []
        batch = [f"event {i}" + (" DEBUG" if i % 4 == 0 else "") for i in range(40)]
        put(app, "/app", "web", batch)
        expected += [m for m in batch if "DEBUG" not in m]
        stream = f"{SENDER}/app/web"
        deadline = time.time() + 30
        while central_events(central, stream) != expected:
            assert time.time() < deadline, central_events(central, stream)
            time.sleep(0.1)

        # The recipient goes down while events are put and the sender is killed: nothing is lost.
        recipient.stop()
        # Meanwhile a backfill: events days apart, which reach the recipient in one message (it
        # splits them to keep PutLogEvents' 24-hour span).
        app.create_log_stream(logGroupName="/app", logStreamName="backfill")
        now = int(time.time() * 1000)
        backfill = [(now - 3 * 86_400_000 + i, f"old {i}") for i in range(3)] + [(now + i, f"new {i}") for i in range(3)]
        for part in (backfill[:3], backfill[3:]):
            app.put_log_events(logGroupName="/app", logStreamName="backfill",
                               logEvents=[{"timestamp": t, "message": m} for t, m in part])
        for round_ in range(2):
            batch = [f"outage {round_} {i}" for i in range(30)]
            put(app, "/app", "web", batch)
            expected += batch
            time.sleep(0.3)
            sender.kill9()
            sender.start()
            app = sender.client()
        recipient.start()
        central = recipient.client()
        deadline = time.time() + 60
        while True:
            got = central_events(central, stream)
            firsts = list(dict.fromkeys(got))  # redeliveries aside
            if firsts == expected:
                break
            assert time.time() < deadline, f"{len(firsts)} of {len(expected)} delivered"
            time.sleep(0.2)
        print(f"destination: {len(expected)} events delivered across accounts, {len(got) - len(firsts)} twice")
        while list(dict.fromkeys(central_events(central, f"{SENDER}/app/backfill"))) != [m for _, m in backfill]:
            assert time.time() < deadline, central_events(central, f"{SENDER}/app/backfill")
            time.sleep(0.1)
        central.delete_destination(destinationName="central")
        assert central.describe_destinations()["destinations"] == []
        # As in CloudWatch, deleting a destination disables the filters publishing to it: the
        # sender stops (rather than retrying forever) and says so on /metrics.
        put(app, "/app", "web", ["after the destination was deleted"])
        deadline = time.time() + 30
        while sender_metric(sender, "logwell_subscription_disabled") != 1:
            assert time.time() < deadline, sender.log()[-2000:]
            time.sleep(0.1)
        errors = sender_metric(sender, "logwell_subscription_delivery_errors_total")
        time.sleep(1)
        assert sender_metric(sender, "logwell_subscription_delivery_errors_total") == errors, "no more retries"
        assert "after the destination was deleted" not in central_events(central, stream)
        assert "subscription filter disabled" in sender.log()
    finally:
        for s in (sender, stranger, recipient):
            s.kill9()
