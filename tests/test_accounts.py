"""Several accounts on one server (`hosted_accounts`): each signed caller works in its own account,
with its own log groups (the same names do not collide), queries, tails, destinations and audit
trail; a caller cannot list, read, query, tail or delete another account's groups, by name or by
ARN; a destination policy lets one account deliver into another's group and nothing more; an
account this server does not host sees nothing; everything survives a restart.
"""
import json
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

import subprocess

from conftest import Server, logwell_bin
import boto3
import botocore.auth
import botocore.awsrequest
import botocore.config
import botocore.credentials

from test_auth import client, code, credentials_toml, groups

ALICE = ("AKIAALICE0000000000", "alice-secret")      # 000000000000, the server's own account
BOB = ("AKIABOB000000000000", "bob-secret")          # 111111111111, hosted
CAROL = ("AKIACAROL0000000000", "carol-secret")      # 222222222222, hosted
MALLORY = ("AKIAMALLORY00000000", "mallory-secret")  # 333333333333, not hosted here


def arn(account, group):
    return f"arn:aws:logs:us-east-1:{account}:log-group:{group}"


def put(logs, group, stream, messages):
    now = int(time.time() * 1000)
    logs.put_log_events(logGroupName=group, logStreamName=stream,
                        logEvents=[{"timestamp": now + i, "message": m} for i, m in enumerate(messages)])


def read(logs, group, stream):
    return [e["message"] for e in logs.get_log_events(logGroupName=group, logStreamName=stream,
                                                      startFromHead=True)["events"]]


def insights(logs, query, **where):
    q = logs.start_query(startTime=0, endTime=int(time.time()) + 60, queryString=query, **where)["queryId"]
    while (r := logs.get_query_results(queryId=q))["status"] in ("Scheduled", "Running"):
        time.sleep(0.05)
    assert r["status"] == "Complete", r
    return [{f["field"]: f["value"] for f in row} for row in r["results"]]


def raw_call(server, key, operation, body):
    """A signed request with any body (boto3 checks its members; an attacker need not)."""
    data = json.dumps(body).encode()
    req = botocore.awsrequest.AWSRequest(method="POST", url=server.endpoint + "/", data=data, headers={
        "X-Amz-Target": f"Logs_20140328.{operation}", "Content-Type": "application/x-amz-json-1.1"})
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(*key), "logs", "us-east-1").add_auth(req)
    p = req.prepare()
    try:
        with urllib.request.urlopen(urllib.request.Request(p.url, data=data, headers=dict(p.headers), method="POST"),
                                    timeout=10) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def signed_get(server, path, key):
    req = botocore.awsrequest.AWSRequest(method="GET", url=f"{server.endpoint}{path}")
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(*key), "logs", "us-east-1").add_auth(req)
    p = req.prepare()
    try:
        with urllib.request.urlopen(urllib.request.Request(p.url, headers=dict(p.headers)), timeout=5) as r:
            return r.status, None
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}").get("__type")


def tail_client(server, key):
    # Live tail's `stream-` host prefix does not resolve on 127.0.0.1.
    return boto3.client("logs", endpoint_url=server.endpoint, region_name="us-east-1",
                        aws_access_key_id=key[0], aws_secret_access_key=key[1],
                        config=botocore.config.Config(retries={"total_max_attempts": 1}, inject_host_prefix=False))


@pytest.fixture
def hosted(tmp_path):
    creds = tmp_path / "credentials.toml"
    creds.write_text(credentials_toml(
        {"access_key_id": ALICE[0], "secret_access_key": ALICE[1], "account_id": "000000000000", "user": "alice"},
        {"access_key_id": BOB[0], "secret_access_key": BOB[1], "account_id": "111111111111", "user": "bob"},
        {"access_key_id": CAROL[0], "secret_access_key": CAROL[1], "account_id": "222222222222", "user": "carol"},
        {"access_key_id": MALLORY[0], "secret_access_key": MALLORY[1], "account_id": "333333333333", "user": "m"},
    ))
    server = Server(tmp_path / "data", (
        'hosted_accounts = ["111111111111", "222222222222"]\n\n'
        "[storage]\nflush_age = 1\nmaintenance_interval = 1\n\n"
        f'[auth]\ncredentials_file = "{creds}"\n')).start()
    yield server
    server.kill9()


def test_accounts_are_apart_and_meet_only_through_destinations(hosted, tmp_path):
    server = hosted
    alice, bob, carol, mallory = (client(server, *k) for k in (ALICE, BOB, CAROL, MALLORY))
    for who, name in ((alice, "alice"), (bob, "bob")):
        who.create_log_group(logGroupName="/app")
        who.create_log_stream(logGroupName="/app", logStreamName="web")
        put(who, "/app", "web", [f"{name}-{i}" for i in range(3)])

    # The same name in two accounts: two groups, each account sees its own.
    assert groups(alice) == ["/app"] and groups(bob) == ["/app"] and groups(carol) == []
    (bob_group,) = [g for g in bob.describe_log_groups()["logGroups"] if g["logGroupName"] == "/app"]
    assert bob_group["arn"] == arn("111111111111", "/app") + ":*"
    assert read(alice, "/app", "web") == ["alice-0", "alice-1", "alice-2"]
    assert read(bob, "/app", "web") == ["bob-0", "bob-1", "bob-2"]
    assert [r["@message"] for r in insights(bob, "fields @message | sort @timestamp asc", logGroupName="/app")] == \
        ["bob-0", "bob-1", "bob-2"]
    assert [e["message"] for e in bob.filter_log_events(logGroupIdentifier=arn("111111111111", "/app"))["events"]] == \
        ["bob-0", "bob-1", "bob-2"]

    # Bob cannot reach Alice's group by ARN: not to read, query, tail or describe its streams.
    alices = arn("000000000000", "/app")
    for call in [lambda: bob.filter_log_events(logGroupIdentifier=alices),
                 lambda: bob.get_log_events(logGroupIdentifier=alices, logStreamName="web"),
                 lambda: bob.describe_log_streams(logGroupIdentifier=alices),
                 lambda: bob.start_query(logGroupIdentifiers=[alices], startTime=0, endTime=1, queryString="stats count(*)"),
                 lambda: tail_client(server, BOB).start_live_tail(logGroupIdentifiers=[alices])]:
        typ, msg = code(call)
        assert typ == "AccessDeniedException", (typ, msg)
        assert "alice-" not in msg
    # Listing by identifier: another account's ARN names none of Bob's groups.
    assert bob.describe_log_groups(logGroupIdentifiers=[alices])["logGroups"] == []
    assert [g["logGroupName"] for g in bob.describe_log_groups(
        logGroupIdentifiers=[arn("111111111111", "/app")])["logGroups"]] == ["/app"]
    typ, _ = code(lambda: bob.start_query(logGroupIdentifiers=[alices, arn("111111111111", "/app")],
                                          startTime=0, endTime=1, queryString="stats count(*)"))
    assert typ == "InvalidParameterException"
    # An account this server does not host: nothing, neither its own nor anyone else's.
    assert code(mallory.describe_log_groups)[0] == "AccessDeniedException"
    assert code(lambda: alice.filter_log_events(logGroupIdentifier=arn("999999999999", "/app")))[0] == \
        "AccessDeniedException"

    # A request may not name its group twice: routing and permissions read one member, and the
    # handler must not act on the other.
    status, body = raw_call(server, BOB, "DeleteDataProtectionPolicy",
                            {"logGroupName": arn("111111111111", "/app"), "logGroupIdentifier": "/app"})
    assert (status, body.get("__type")) == (400, "InvalidParameterException"), body
    status, body = raw_call(server, BOB, "GetLogEvents", {"logGroupName": "/app", "logStreamName": "web",
                                                         "logGroupIdentifier": alices})
    assert (status, body.get("__type")) == (400, "InvalidParameterException"), body
    # A resource policy that lets Bob query one of Alice's groups does not let a SOURCE command
    # (or SQL) pick others.
    alice.put_resource_policy(policyName="bob-queries", policyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "111111111111"},
                                                "Action": "logs:StartQuery", "Resource": alices}]}))
    alice.create_log_group(logGroupName="/secret")
    for query, language in (("SOURCE logGroups(namePrefix: ['/']) | fields @message", "CWLI"),
                            ('SELECT * FROM "/secret"', "SQL")):
        typ, _ = code(lambda: bob.start_query(logGroupIdentifiers=[alices], startTime=0, endTime=1,
                                              queryString=query, queryLanguage=language))
        assert typ == "AccessDeniedException", (query, typ)
    q = bob.start_query(logGroupIdentifiers=[alices], startTime=0, endTime=int(time.time()) + 60,
                        queryString="fields @message")["queryId"]
    # Its results are Alice's account's to give: only with logs:GetQueryResults in her policy.
    assert code(lambda: bob.get_query_results(queryId=q))[0] == "AccessDeniedException"
    alice.put_resource_policy(policyName="bob-queries", policyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": "111111111111"}, "Action": "logs:StartQuery", "Resource": alices},
            {"Effect": "Allow", "Principal": {"AWS": "111111111111"}, "Action": "logs:GetQueryResults", "Resource": "*"}]}))
    while (r := bob.get_query_results(queryId=q))["status"] in ("Scheduled", "Running"):
        time.sleep(0.05)
    assert sorted(f["value"] for row in r["results"] for f in row if f["field"] == "@message") == \
        ["alice-0", "alice-1", "alice-2"]
    alice.delete_resource_policy(policyName="bob-queries")
    # The SSE live tail keeps an ARN's account too.
    assert signed_get(server, "/live-tail?group=" + urllib.parse.quote(alices, safe=""), BOB) == (400, "AccessDeniedException")

    # Bob deletes his /app; Alice's is still there.
    bob.delete_log_group(logGroupName="/app")
    assert groups(bob) == [] and read(alice, "/app", "web") == ["alice-0", "alice-1", "alice-2"]

    # Carol's destination lets Bob's account deliver into her group, and no one else.
    carol.create_log_group(logGroupName="/central")
    dest = carol.put_destination(destinationName="central", roleArn="arn:aws:iam::222222222222:role/r",
                                 targetArn=arn("222222222222", "/central"))["destination"]
    dest_arn = dest["arn"]
    assert dest_arn == "arn:aws:logs:us-east-1:222222222222:destination:central"
    carol.put_destination_policy(destinationName="central", accessPolicy=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "111111111111"},
                                                "Action": "logs:PutSubscriptionFilter", "Resource": dest_arn}]}))
    bob.create_log_group(logGroupName="/svc")
    bob.create_log_stream(logGroupName="/svc", logStreamName="web")
    bob.put_subscription_filter(logGroupName="/svc", filterName="ship", filterPattern="", destinationArn=dest_arn)
    typ, msg = code(lambda: alice.put_subscription_filter(logGroupName="/app", filterName="ship", filterPattern="",
                                                          destinationArn=dest_arn))
    assert typ == "AccessDeniedException" and "000000000000" in msg
    put(bob, "/svc", "web", [f"shipped-{i}" for i in range(4)])
    deadline = time.time() + 30
    while True:
        try:
            got = read(carol, "/central", "111111111111/svc/web")
        except Exception:
            got = []
        if got == [f"shipped-{i}" for i in range(4)]:
            break
        assert time.time() < deadline, server.log()
        time.sleep(0.2)
    # ... and nothing more: Bob cannot read what he delivered, nor Alice.
    for who in (bob, alice):
        assert code(lambda: who.filter_log_events(logGroupIdentifier=arn("222222222222", "/central")))[0] == \
            "AccessDeniedException"
    assert "/central" not in groups(bob)

    # Each account's store is its own, and all of it survives a restart.
    assert (server.data_dir / "accounts" / "111111111111").is_dir()
    assert (server.data_dir / "accounts" / "222222222222").is_dir()
    server.restart()
    alice, bob, carol = (client(server, *k) for k in (ALICE, BOB, CAROL))
    assert read(alice, "/app", "web") == ["alice-0", "alice-1", "alice-2"]
    assert groups(bob) == ["/svc"]
    assert read(carol, "/central", "111111111111/svc/web") == [f"shipped-{i}" for i in range(4)]
    # The audit trail of each account is its own.
    deadline = time.time() + 20
    while True:
        bobs = [g["logGroupName"] for g in bob.describe_log_groups()["logGroups"]]
        if "/logwell/audit" in bobs:
            break
        assert time.time() < deadline, "bob's audit trail"
        time.sleep(0.2)
    while not (rows := insights(bob, "stats count(*) as calls by accountId", logGroupName="/logwell/audit")):
        assert time.time() < deadline, "bob's audit events"
        time.sleep(0.2)
    assert [r["accountId"] for r in rows] == ["111111111111"], rows

    # `logwell rotate-keys` rotates every account's keyring, and everything still reads.
    server.stop()
    out = subprocess.run([logwell_bin(), "rotate-keys", "--config", str(server.config_path),
                          "--data-dir", str(server.data_dir)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    for account in ("000000000000", "111111111111", "222222222222"):
        assert f"account {account}: rotated the master key" in out.stdout, out.stdout
    server.start()
    alice, carol = client(server, *ALICE), client(server, *CAROL)
    assert read(alice, "/app", "web") == ["alice-0", "alice-1", "alice-2"]
    assert read(carol, "/central", "111111111111/svc/web") == [f"shipped-{i}" for i in range(4)]
