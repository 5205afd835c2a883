"""SigV4 authentication with real clients: a server given credentials verifies every request's
signature (boto3, the AWS CLI, and raw botocore-signed GETs for /metrics and /live-tail), answers a
wrong secret, a tampered body, a skewed clock, an unknown key, a wrong or expired session token
and a missing signature with AWS's errors, reloads its credentials file without a restart, and keeps
other accounts' principals away from this account's groups. Without credentials it serves only a
loopback address unless told --insecure-no-auth.
"""
import datetime
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from unittest import mock

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.config
import botocore.credentials
import pytest
from botocore.exceptions import ClientError

from conftest import Server, free_port, logwell_bin

ALICE = ("AKIAALICE0000000000", "alice-secret/with+chars")
TEMP = ("ASIATEMP00000000000", "temp-secret", "the-session-token")
EXPIRED = ("ASIAOLD000000000000", "old-secret", "old-token")
BOB = ("AKIABOB000000000000", "bob-secret")


def credentials_toml(*entries):
    out = []
    for e in entries:
        out.append("[[credentials]]\n" + "".join(f'{k} = "{v}"\n' for k, v in e.items()))
    return "\n".join(out)


def entries():
    return [
        {"access_key_id": ALICE[0], "secret_access_key": ALICE[1], "account_id": "000000000000", "user": "alice"},
        {"access_key_id": TEMP[0], "secret_access_key": TEMP[1], "account_id": "000000000000", "user": "ops",
         "session_token": TEMP[2], "expires": "2099-01-01T00:00:00Z"},
        {"access_key_id": EXPIRED[0], "secret_access_key": EXPIRED[1], "account_id": "000000000000", "user": "ops",
         "session_token": EXPIRED[2], "expires": "2020-01-01T00:00:00Z"},
        {"access_key_id": BOB[0], "secret_access_key": BOB[1], "account_id": "111111111111", "user": "bob"},
    ]


def client(server, key, secret, token=None):
    return boto3.client(
        "logs", endpoint_url=server.endpoint, region_name="us-east-1",
        aws_access_key_id=key, aws_secret_access_key=secret, aws_session_token=token,
        config=botocore.config.Config(retries={"total_max_attempts": 1}),
    )


def code(call):
    with pytest.raises(ClientError) as e:
        call()
    return e.value.response["Error"]["Code"], e.value.response["Error"]["Message"]


def groups(logs):
    """The log groups a client lists, less the audit trail's own (written within a second)."""
    return [g["logGroupName"] for g in logs.describe_log_groups()["logGroups"] if g["logGroupName"] != "/logwell/audit"]


def signed_get(server, path, key, secret):
    """A GET signed as botocore signs any request."""
    req = botocore.awsrequest.AWSRequest(method="GET", url=f"{server.endpoint}{path}")
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(key, secret), "logs", "us-east-1").add_auth(req)
    prepared = req.prepare()
    return urllib.request.Request(prepared.url, headers=dict(prepared.headers), method="GET")


def status_and_type(request):
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, None
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}").get("__type")


@pytest.fixture
def secured(tmp_path):
    creds = tmp_path / "credentials.toml"
    creds.write_text(credentials_toml(*entries()))
    creds.chmod(0o600)
    server = Server(tmp_path / "data", f'[auth]\ncredentials_file = "{creds}"\n').start()
    yield server, creds
    server.kill9()


def test_signed_requests_pass_and_bad_signatures_get_awss_errors(secured):
    server, _ = secured
    logs = client(server, *ALICE)
    logs.create_log_group(logGroupName="/auth/app")
    logs.create_log_stream(logGroupName="/auth/app", logStreamName="s")
    logs.put_log_events(logGroupName="/auth/app", logStreamName="s",
                        logEvents=[{"timestamp": int(time.time() * 1000), "message": "hello"}])
    assert groups(logs) == ["/auth/app"]
    assert "requests must be signed" in server.log()

    assert code(lambda: client(server, ALICE[0], "wrong-secret").describe_log_groups())[0] == "InvalidSignatureException"
    typ, msg = code(lambda: client(server, "AKIANOBODY000000000", "x").describe_log_groups())
    assert (typ, msg) == ("UnrecognizedClientException", "The security token included in the request is invalid.")

    # A body changed after signing (a replay with another payload).
    tampered = client(server, *ALICE)

    def tamper(request, **kwargs):
        request.body = request.body.replace(b"/auth/app", b"/auth/xxx")
    tampered.meta.events.register("before-send.logs.DeleteLogGroup", tamper)
    assert code(lambda: tampered.delete_log_group(logGroupName="/auth/app"))[0] == "InvalidSignatureException"

    # A clock 20 minutes slow, then 20 minutes fast.
    for minutes, words in [(-20, "Signature expired"), (20, "Signature not yet current")]:
        skewed = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) + datetime.timedelta(minutes=minutes)
        with mock.patch("botocore.auth.get_current_datetime", return_value=skewed):
            typ, msg = code(lambda: client(server, *ALICE).describe_log_groups())
        assert typ == "InvalidSignatureException" and msg.startswith(words), msg
        assert ALICE[1] not in msg

    # Temporary credentials: the session token must match and be current.
    assert client(server, *TEMP).describe_log_groups()["logGroups"]
    assert code(lambda: client(server, TEMP[0], TEMP[1], "another-token").describe_log_groups())[0] == "UnrecognizedClientException"
    assert code(lambda: client(server, TEMP[0], TEMP[1]).describe_log_groups())[0] == "UnrecognizedClientException"
    assert code(lambda: client(server, *EXPIRED).describe_log_groups())[0] == "ExpiredTokenException"

    # No signature at all.
    raw = urllib.request.Request(server.endpoint + "/", data=b"{}", method="POST", headers={
        "X-Amz-Target": "Logs_20140328.DescribeLogGroups", "Content-Type": "application/x-amz-json-1.1"})
    assert status_and_type(raw) == (400, "MissingAuthenticationTokenException")

    # Another account's principal sees nothing of this account's groups and changes nothing.
    bob = client(server, *BOB)
    for call in [bob.describe_log_groups, lambda: bob.delete_log_group(logGroupName="/auth/app"),
                 lambda: bob.filter_log_events(logGroupName="/auth/app")]:
        typ, msg = code(call)
        assert typ == "AccessDeniedException" and "arn:aws:iam::111111111111:user/bob" in msg
    assert groups(logs) == ["/auth/app"]

    # /metrics and /live-tail want a signature of this account too.
    assert status_and_type(urllib.request.Request(server.endpoint + "/metrics"))[1] == "MissingAuthenticationTokenException"
    assert status_and_type(signed_get(server, "/metrics", *ALICE)) == (200, None)
    assert status_and_type(signed_get(server, "/metrics", ALICE[0], "wrong"))[1] == "InvalidSignatureException"
    assert status_and_type(signed_get(server, "/live-tail?logGroupIdentifiers=%2Fauth%2Fapp", *BOB))[1] == "AccessDeniedException"


def test_the_aws_cli_signs_and_is_refused_with_a_wrong_secret(secured):
    server, _ = secured
    aws = str(Path(sys.executable).parent / "aws")

    def cli(secret, *args):
        env = dict(os.environ, AWS_ACCESS_KEY_ID=ALICE[0], AWS_SECRET_ACCESS_KEY=secret,
                   AWS_DEFAULT_REGION="us-east-1", AWS_PAGER="")
        return subprocess.run([aws, "--endpoint-url", server.endpoint, "--output", "json", *args],
                              capture_output=True, text=True, env=env)
    ok = cli(ALICE[1], "logs", "create-log-group", "--log-group-name", "/auth/cli")
    assert ok.returncode == 0, ok.stderr
    listed = cli(ALICE[1], "logs", "describe-log-groups")
    assert [g["logGroupName"] for g in json.loads(listed.stdout)["logGroups"] if g["logGroupName"] != "/logwell/audit"] == ["/auth/cli"]
    bad = cli("not-the-secret", "logs", "describe-log-groups")
    assert bad.returncode != 0 and "InvalidSignatureException" in bad.stderr


def test_the_credentials_file_reloads_without_a_restart(secured):
    server, creds = secured
    carol = ("AKIACAROL0000000000", "carol-secret")
    assert code(lambda: client(server, *carol).describe_log_groups())[0] == "UnrecognizedClientException"
    # Carol added, Alice revoked.
    new = [e for e in entries() if e["access_key_id"] != ALICE[0]] + [
        {"access_key_id": carol[0], "secret_access_key": carol[1], "account_id": "000000000000", "user": "carol"}]
    creds.write_text(credentials_toml(*new))
    deadline = time.time() + 10
    while True:
        try:
            client(server, *carol).describe_log_groups()
            break
        except ClientError:
            assert time.time() < deadline, server.log()
            time.sleep(0.2)
    assert code(lambda: client(server, *ALICE).describe_log_groups())[0] == "UnrecognizedClientException"
    # A broken file keeps the keys that were there.
    creds.write_text("[[credentials]]\nbroken =")
    time.sleep(1.5)
    client(server, *carol).describe_log_groups()
    assert "credentials file not reloaded" in server.log()


def test_without_credentials_only_loopback_is_served_unless_told_otherwise(tmp_path):
    port = free_port()
    args = [logwell_bin(), "serve", "--data-dir", str(tmp_path / "open"), "--listen", f"0.0.0.0:{port}"]
    refused = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0
    assert "refusing to serve" in refused.stderr and "--insecure-no-auth" in refused.stderr
    proc = subprocess.Popen(args + ["--insecure-no-auth"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert proc.poll() is None and time.time() < deadline
                time.sleep(0.05)
    finally:
        proc.kill()
        out = proc.communicate(timeout=10)[0].decode()
    assert "NOT authenticated" in out
    # On loopback, today's local experience: any client, any keys.
    server = Server(tmp_path / "loop").start()
    try:
        client(server, "anything", "at-all").create_log_group(logGroupName="/open")
        assert "requests are not authenticated (loopback only)" in server.log()
    finally:
        server.kill9()


def test_cross_account_delivery_is_signed_and_the_recipient_trusts_only_the_signature(tmp_path):
    """The recipient verifies signatures; the sender signs its deliveries with a key of its own
    account that the recipient lists, so a destination policy now rests on who signed, not on
    what a request says about itself."""
    central_key = ("AKIACENTRAL00000000", "central-secret")
    sender_key = ("AKIASENDER000000000", "sender-secret")
    stranger_key = ("AKIASTRANGER0000000", "stranger-secret")
    creds = tmp_path / "recipient-credentials.toml"
    creds.write_text(credentials_toml(
        {"access_key_id": central_key[0], "secret_access_key": central_key[1], "account_id": "222222222222", "user": "admin"},
        {"access_key_id": sender_key[0], "secret_access_key": sender_key[1], "account_id": "111111111111", "user": "logs-delivery"},
        {"access_key_id": stranger_key[0], "secret_access_key": stranger_key[1], "account_id": "333333333333", "user": "x"},
    ))
    recipient = Server(tmp_path / "recipient", f'account_id = "222222222222"\n\n[auth]\ncredentials_file = "{creds}"\n').start()
    signed_sender = Server(tmp_path / "sender", (
        'account_id = "111111111111"\n\n[delivery]\nbackoff_min_ms = 20\nbackoff_max_ms = 300\n\n'
        f'[delivery.accounts."222222222222"]\nurl = "{recipient.endpoint}"\n'
        f'access_key_id = "{sender_key[0]}"\nsecret_access_key = "{sender_key[1]}"\n')).start()
    unsigned_sender = Server(tmp_path / "unsigned", (
        'account_id = "111111111111"\n\n[delivery.accounts]\n'
        f'"222222222222" = "{recipient.endpoint}"\n')).start()
    dest_arn = "arn:aws:logs:us-east-1:222222222222:destination:central"
    try:
        central = client(recipient, *central_key)
        central.create_log_group(logGroupName="/central")
        central.put_destination(destinationName="central", roleArn="arn:aws:iam::222222222222:role/r",
                                targetArn="arn:aws:logs:us-east-1:222222222222:log-group:/central")
        central.put_destination_policy(destinationName="central", accessPolicy=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "111111111111"},
                                                    "Action": "logs:PutSubscriptionFilter", "Resource": dest_arn}]}))
        for sender in (signed_sender, unsigned_sender):
            app = sender.client()
            app.create_log_group(logGroupName="/app")
            app.create_log_stream(logGroupName="/app", logStreamName="web")
        # Without a key it lists, the recipient does not know who is asking, and says so.
        typ, _ = code(lambda: unsigned_sender.client().put_subscription_filter(
            logGroupName="/app", filterName="ship", filterPattern="", destinationArn=dest_arn))
        assert typ == "UnrecognizedClientException"

        app = signed_sender.client()
        app.put_subscription_filter(logGroupName="/app", filterName="ship", filterPattern="", destinationArn=dest_arn)
        app.put_log_events(logGroupName="/app", logStreamName="web",
                           logEvents=[{"timestamp": int(time.time() * 1000), "message": f"m{i}"} for i in range(5)])
        deadline = time.time() + 30
        while True:
            try:
                got = [e["message"] for e in central.get_log_events(
                    logGroupName="/central", logStreamName="111111111111/app/web", startFromHead=True)["events"]]
            except ClientError:
                got = []
            if got[:5] == [f"m{i}" for i in range(5)]:
                break
            assert time.time() < deadline, signed_sender.log()
            time.sleep(0.2)

        # A stranger's valid signature claiming to be the allowed account is refused.
        body = json.dumps({"destinationName": "central", "sourceAccount": "111111111111", "data": ""}).encode()
        req = botocore.awsrequest.AWSRequest(method="POST", url=recipient.endpoint + "/", data=body, headers={
            "X-Amz-Target": "Logs_20140328.LogwellDeliverToDestination",
            "Content-Type": "application/x-amz-json-1.1"})
        botocore.auth.SigV4Auth(botocore.credentials.Credentials(*stranger_key), "logs", "us-east-1").add_auth(req)
        p = req.prepare()
        forged = urllib.request.Request(p.url, data=body, headers=dict(p.headers), method="POST")
        assert status_and_type(forged) == (400, "AccessDeniedException")
    finally:
        for s in (recipient, signed_sender, unsigned_sender):
            s.kill9()


def test_identity_policies_decide_every_call_and_reload(tmp_path):
    """Principals with identity policies get what the policies allow, evaluated on every call
    with AWS's logic (explicit deny wins, default deny), aws:SourceIp included; AccessDenied says
    which action on which resource, as AWS does; a changed policy applies without a restart."""
    admin = ("AKIAADMIN0000000000", "admin-secret")
    reader = ("AKIAREADER000000000", "reader-secret")
    writer = ("AKIAWRITER000000000", "writer-secret")
    local = ("AKIALOCAL0000000000", "local-secret")
    remote = ("AKIAREMOTE000000000", "remote-secret")
    read_only = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": [
        "logs:Describe*", "logs:Get*", "logs:FilterLogEvents", "logs:StartQuery"], "Resource": "*"}]})
    app_writer = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:StartQuery"],
         "Resource": "arn:aws:logs:*:*:log-group:/app/*"},
        {"Effect": "Deny", "Action": "logs:PutLogEvents", "Resource": "arn:aws:logs:*:*:log-group:/app/frozen:*"}]})
    from_loopback = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "logs:*",
        "Resource": "*", "Condition": {"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}}}]})
    elsewhere_only = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "logs:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "logs:*", "Resource": "*",
         "Condition": {"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}]})

    def entry(key, user, policy=None):
        e = {"access_key_id": key[0], "secret_access_key": key[1], "account_id": "000000000000", "user": user}
        if policy:
            e["policy"] = policy.replace('"', '\\"')
        return e
    creds = tmp_path / "credentials.toml"

    def write(reader_policy):
        creds.write_text(credentials_toml(entry(admin, "admin"), entry(reader, "reader", reader_policy),
                                          entry(writer, "writer", app_writer), entry(local, "local", from_loopback),
                                          entry(remote, "remote", elsewhere_only)))
    write(read_only)
    server = Server(tmp_path / "data", f'[auth]\ncredentials_file = "{creds}"\n').start()
    try:
        root = client(server, *admin)
        for g in ["/app/web", "/app/frozen", "/db/main"]:
            root.create_log_group(logGroupName=g)
            root.create_log_stream(logGroupName=g, logStreamName="s")
        event = [{"timestamp": int(time.time() * 1000), "message": "x"}]

        r = client(server, *reader)
        assert len(groups(r)) == 3
        typ, msg = code(lambda: r.put_log_events(logGroupName="/app/web", logStreamName="s", logEvents=event))
        assert typ == "AccessDeniedException"
        assert msg == ("User: arn:aws:iam::000000000000:user/reader is not authorized to perform: logs:PutLogEvents "
                       "on resource: arn:aws:logs:us-east-1:000000000000:log-group:/app/web:log-stream:s "
                       "because no identity-based policy allows the logs:PutLogEvents action")
        assert code(lambda: r.delete_log_group(logGroupName="/db/main"))[0] == "AccessDeniedException"

        w = client(server, *writer)
        w.put_log_events(logGroupName="/app/web", logStreamName="s", logEvents=event)
        for g in ["/db/main", "/app/frozen"]:
            typ, msg = code(lambda: w.put_log_events(logGroupName=g, logStreamName="s", logEvents=event))
            assert typ == "AccessDeniedException", g
        assert "with an explicit deny in an identity-based policy" in msg
        assert code(lambda: w.describe_log_groups())[0] == "AccessDeniedException"
        # A query is allowed only if every group it reads is.
        w.start_query(logGroupNames=["/app/web"], startTime=0, endTime=int(time.time()), queryString="fields @message")
        assert code(lambda: w.start_query(logGroupNames=["/app/web", "/db/main"], startTime=0,
                                          endTime=int(time.time()), queryString="fields @message"))[0] == "AccessDeniedException"

        # aws:SourceIp is where the request came from (here 127.0.0.1).
        assert client(server, *local).describe_log_groups()["logGroups"]
        typ, msg = code(lambda: client(server, *remote).describe_log_groups())
        assert typ == "AccessDeniedException" and "explicit deny" in msg

        # Nothing was changed by the refused calls.
        assert [e["message"] for e in root.get_log_events(logGroupName="/app/web", logStreamName="s")["events"]] == ["x"]
        assert len(groups(root)) == 3

        # The reader's policy grows to allow PutLogEvents: it applies within seconds, no restart.
        write(read_only.replace('"logs:StartQuery"', '"logs:StartQuery", "logs:PutLogEvents"'))
        deadline = time.time() + 10
        while True:
            try:
                r.put_log_events(logGroupName="/db/main", logStreamName="s", logEvents=event)
                break
            except ClientError:
                assert time.time() < deadline
                time.sleep(0.2)
    finally:
        server.kill9()


def test_resource_policies_let_another_account_write_where_they_say(secured):
    server, _ = secured
    root = client(server, *ALICE)
    bob = client(server, *BOB)
    root.create_log_group(logGroupName="/shared/in")
    root.create_log_stream(logGroupName="/shared/in", logStreamName="s")
    root.create_log_group(logGroupName="/private")
    root.create_log_stream(logGroupName="/private", logStreamName="s")
    event = [{"timestamp": int(time.time() * 1000), "message": "from bob"}]
    assert code(lambda: bob.put_log_events(logGroupName="/shared/in", logStreamName="s", logEvents=event))[0] == "AccessDeniedException"

    doc = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111111111111:root"},
         "Action": ["logs:CreateLogStream", "logs:PutLogEvents"], "Resource": "arn:aws:logs:us-east-1:000000000000:log-group:/shared/*"}]}
    put = root.put_resource_policy(policyName="partners", policyDocument=json.dumps(doc))["resourcePolicy"]
    assert put["policyName"] == "partners" and put["lastUpdatedTime"] > 0
    (listed,) = root.describe_resource_policies()["resourcePolicies"]
    assert json.loads(listed["policyDocument"]) == doc

    bob.put_log_events(logGroupName="/shared/in", logStreamName="s", logEvents=event)
    for call in [lambda: bob.put_log_events(logGroupName="/private", logStreamName="s", logEvents=event),
                 bob.describe_log_groups, lambda: bob.delete_log_group(logGroupName="/shared/in")]:
        typ, msg = code(call)
        assert typ == "AccessDeniedException" and "resource-based policy" in msg, msg
    assert [e["message"] for e in root.get_log_events(logGroupName="/shared/in", logStreamName="s")["events"]] == ["from bob"]

    # Bad input, as CloudWatch answers it.
    assert code(lambda: root.put_resource_policy(policyName="bad", policyDocument="{not json"))[0] == "InvalidParameterException"
    others = json.dumps(doc).replace("111111111111", "999999999999")
    for i in range(9):
        root.put_resource_policy(policyName=f"p{i}", policyDocument=others)
    assert code(lambda: root.put_resource_policy(policyName="eleventh", policyDocument=json.dumps(doc)))[0] == "LimitExceededException"
    assert code(lambda: root.delete_resource_policy(policyName="nope"))[0] == "ResourceNotFoundException"
    root.delete_resource_policy(policyName="partners")
    assert code(lambda: bob.put_log_events(logGroupName="/shared/in", logStreamName="s", logEvents=event))[0] == "AccessDeniedException"
    # They survive a restart.
    server.restart()
    assert len(client(server, *ALICE).describe_resource_policies()["resourcePolicies"]) == 9


def test_every_call_is_in_the_audit_log_group_and_insights_reads_it(secured):
    server, _ = secured
    alice = client(server, *ALICE)
    alice.create_log_group(logGroupName="/audited")
    code(lambda: client(server, *BOB).delete_log_group(logGroupName="/audited"))
    code(lambda: client(server, ALICE[0], "wrong").describe_log_groups())
    deadline = time.time() + 20
    while True:
        try:
            events = [json.loads(e["message"]) for e in alice.filter_log_events(logGroupName="/logwell/audit")["events"]]
        except ClientError:
            events = []
        actions = {(e["action"], e["principal"], e["errorCode"]) for e in events}
        if {("logs:CreateLogGroup", "arn:aws:iam::000000000000:user/alice", None),
            ("logs:DeleteLogGroup", "arn:aws:iam::111111111111:user/bob", "AccessDeniedException"),
            ("logs:DescribeLogGroups", None, "InvalidSignatureException")} <= actions:
            break
        assert time.time() < deadline, actions
        time.sleep(0.3)
    created = next(e for e in events if e["action"] == "logs:CreateLogGroup")
    assert created["sourceIp"] == "127.0.0.1" and created["accessKeyId"] == ALICE[0] and created["requestId"]
    assert created["accountId"] == "000000000000" and created["result"] == "ok"
    # Insights reads it like any other group.
    q = alice.start_query(logGroupName="/logwell/audit", startTime=int(time.time()) - 600, endTime=int(time.time()) + 60,
                          queryString="stats count(*) as n by errorCode")["queryId"]
    while (r := alice.get_query_results(queryId=q))["status"] in ("Scheduled", "Running"):
        time.sleep(0.1)
    by_code = {dict((f["field"], f["value"]) for f in row).get("errorCode", ""): row for row in r["results"]}
    assert "AccessDeniedException" in by_code and "InvalidSignatureException" in by_code, r["results"]
