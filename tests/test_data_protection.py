"""Data protection policies through boto3: PutDataProtectionPolicy checks AWS's document (two
statements, Audit and Deidentify, the same identifiers, managed ARNs or custom regexes), and then
every way out of the group shows the named text as `*` (GetLogEvents, FilterLogEvents and its
patterns, Insights on fresh and flushed data and JSON fields, GetLogRecord, live tail, a
subscription's Firehose objects, export tasks) unless the caller asks to unmask and holds
logs:Unmask; findings are counted on /metrics; the policy survives a restart and can be deleted.
"""
import gzip
import json
import subprocess
import time
import urllib.request

import boto3
import duckdb
import botocore.config
import pytest
from botocore.exceptions import ClientError

from conftest import Server, bucket_files, logwell_bin
from test_auth import credentials_toml
from test_subscription_targets import firehose_objects

ARN = "arn:aws:dataprotection::aws:data-identifier/"
FIREHOSE = "arn:aws:firehose:us-east-1:000000000000:deliverystream/archive"
GROUP = "/dp/app"
EMAIL, IP, EMPLOYEE = "alice@example.com", "10.1.2.3", "EmployeeId-123456789"


def policy(identifiers=("EmailAddress", "IpAddress"), custom=True):
    ids = [ARN + i for i in identifiers] + (["EmployeeId"] if custom else [])
    doc = {"Name": "protect", "Version": "2021-06-01",
           "Statement": [{"Sid": "audit", "DataIdentifier": ids, "Operation": {"Audit": {"FindingsDestination": {}}}},
                         {"Sid": "redact", "DataIdentifier": ids, "Operation": {"Deidentify": {"MaskConfig": {}}}}]}
    if custom:
        doc["Configuration"] = {"CustomDataIdentifier": [{"Name": "EmployeeId", "Regex": r"EmployeeId-\d{9}"}]}
    return json.dumps(doc)


def stars(text):
    return "*" * len(text)


def code(call):
    with pytest.raises(ClientError) as e:
        call()
    return e.value.response["Error"]["Code"], e.value.response["Error"]["Message"]


def insights(logs, query, group=GROUP):
    q = logs.start_query(logGroupName=group, startTime=0, endTime=int(time.time()) + 60, queryString=query)["queryId"]
    while (r := logs.get_query_results(queryId=q))["status"] in ("Scheduled", "Running"):
        time.sleep(0.05)
    assert r["status"] == "Complete", r
    return [{f["field"]: f["value"] for f in row} for row in r["results"]]


CONFIG = """
[storage]
flush_age = 1
maintenance_interval = 1
field_columns_at_flush = true

[delivery.firehose."arn:aws:firehose:us-east-1:000000000000:deliverystream/archive"]
bucket = "archive"
buffer_secs = 1
"""


def test_every_read_path_masks_unless_unmasked(tmp_path):
    data = tmp_path / "data"
    (data / "buckets" / "archive").mkdir(parents=True)
    (data / "buckets" / "exports").mkdir(parents=True)
    server = Server(data, CONFIG).start()
    try:
        logs = server.client()
        tail_client = server.client(inject_host_prefix=False)
        logs.create_log_group(logGroupName=GROUP)
        logs.create_log_stream(logGroupName=GROUP, logStreamName="web")

        # Bad documents: AWS's InvalidParameterException, nothing stored.
        for bad in ["{", json.dumps({"Statement": []}), policy(("NoSuchThing",)),
                    policy().replace('"MaskConfig": {}', '"MaskConfig": {"x": 1}')]:
            assert code(lambda: logs.put_data_protection_policy(logGroupIdentifier=GROUP, policyDocument=bad))[0] \
                == "InvalidParameterException"
        assert code(lambda: logs.put_data_protection_policy(logGroupIdentifier="/dp/none", policyDocument=policy()))[0] \
            == "ResourceNotFoundException"
        assert "policyDocument" not in logs.get_data_protection_policy(logGroupIdentifier=GROUP)

        put = logs.put_data_protection_policy(logGroupIdentifier=GROUP, policyDocument=policy())
        assert put["policyDocument"] == policy() and put["lastUpdatedTime"] > 0
        got = logs.get_data_protection_policy(logGroupIdentifier=GROUP)
        assert (got["policyDocument"], got["lastUpdatedTime"]) == (policy(), put["lastUpdatedTime"])
        (described,) = logs.describe_log_groups(logGroupNamePrefix=GROUP)["logGroups"]
        assert described["dataProtectionStatus"] == "ACTIVATED"

        session = tail_client.start_live_tail(
            logGroupIdentifiers=[f"arn:aws:logs:us-east-1:000000000000:log-group:{GROUP}"])
        stream = iter(session["responseStream"])
        assert "sessionStart" in next(stream)
        logs.put_subscription_filter(logGroupName=GROUP, filterName="archive", filterPattern="", destinationArn=FIREHOSE)

        now = int(time.time() * 1000)
        plain = f"login by {EMAIL} from {IP} as {EMPLOYEE}"
        masked = f"login by {stars(EMAIL)} from {stars(IP)} as {stars(EMPLOYEE)}"
        as_json = json.dumps({"user": EMAIL, "status": 200})
        masked_json = json.dumps({"user": stars(EMAIL), "status": 200})
        logs.put_log_events(logGroupName=GROUP, logStreamName="web", logEvents=[
            {"timestamp": now, "message": plain}, {"timestamp": now + 1, "message": as_json},
            {"timestamp": now + 2, "message": "nothing secret"}])
        expected = [masked, masked_json, "nothing secret"]

        # Live tail: masked before the client sees it.
        tailed = []
        for event in stream:
            tailed += [e["message"] for e in event.get("sessionUpdate", {}).get("sessionResults", [])]
            if len(tailed) >= 3:
                break
        session["responseStream"].close()
        assert tailed == expected

        def check_reads(where):
            got = logs.get_log_events(logGroupName=GROUP, logStreamName="web", startFromHead=True)["events"]
            assert [e["message"] for e in got] == expected, where
            got = logs.get_log_events(logGroupName=GROUP, logStreamName="web", startFromHead=True, unmask=True)["events"]
            assert [e["message"] for e in got] == [plain, as_json, "nothing secret"], where
            assert [e["message"] for e in logs.filter_log_events(logGroupName=GROUP)["events"]] == expected, where
            # Patterns match the masked text: the address itself is not findable without unmask.
            assert logs.filter_log_events(logGroupName=GROUP, filterPattern='"alice"')["events"] == [], where
            assert logs.filter_log_events(logGroupName=GROUP, filterPattern='{ $.user = "alice*" }')["events"] == [], where
            found = logs.filter_log_events(logGroupName=GROUP, filterPattern='"alice"', unmask=True)["events"]
            assert [e["message"] for e in found] == [plain, as_json], where
            rows = insights(logs, "fields @message | sort @timestamp asc")
            assert [r["@message"] for r in rows] == expected, where
            assert insights(logs, "fields @message | filter @message like /alice/") == [], where
            assert [r["user"] for r in insights(logs, "fields user | filter ispresent(user)")] == [stars(EMAIL)], where
            assert [r["n"] for r in insights(logs, "stats count_distinct(user) as n")] == ["1"], where
            rows = insights(logs, "fields @message | filter @message like /alice/ | sort @timestamp asc | unmask")
            assert [r["@message"] for r in rows] == [plain, as_json], where
            ptr = insights(logs, "fields @ptr | filter @message like /login/")[0]["@ptr"]
            assert logs.get_log_record(logRecordPointer=ptr)["logRecord"]["@message"] == masked, where
            assert logs.get_log_record(logRecordPointer=ptr, unmask=True)["logRecord"]["@message"] == plain, where

        check_reads("in memory")
        deadline = time.time() + 30
        while not list((data).rglob("*.parquet")):
            assert time.time() < deadline, "no segment was flushed"
            time.sleep(0.2)
        time.sleep(1.5)
        check_reads("in segments with field columns")

        # The subscription's Firehose objects.
        deadline = time.time() + 30
        while True:
            files = bucket_files(data / "buckets" / "archive")
            records = firehose_objects(lambda: [str(p) for p in files], lambda k: open(k, "rb").read())
            delivered = [e["message"] for _, r in records if r["messageType"] == "DATA_MESSAGE" for e in r["logEvents"]]
            if len(delivered) >= 3 or time.time() > deadline:
                break
            time.sleep(0.2)
        assert delivered == expected

        # An export task writes masked text.
        task = logs.create_export_task(logGroupName=GROUP, fromTime=now - 1000, to=now + 1000, destination="exports")
        deadline = time.time() + 30
        while (t := logs.describe_export_tasks(taskId=task["taskId"])["exportTasks"][0])["status"]["code"] != "COMPLETED":
            assert time.time() < deadline, t
            time.sleep(0.1)
        exported = [gzip.decompress(p.read_bytes()).decode() for p in (data / "buckets" / "exports").rglob("*.gz")]
        assert exported and all(EMAIL not in text and stars(EMAIL) in text for text in exported)
        # ... and so does a Parquet export: the masked message, none of the stored field columns.
        out = subprocess.run([logwell_bin(), "export", GROUP, "--bucket", "exports", "--prefix", "pq", "--parquet",
                              "--since", "1h", "--endpoint", server.endpoint], capture_output=True, text=True,
                             timeout=120, env={"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
                                               "AWS_REGION": "us-east-1", "PATH": "/usr/bin:/bin"})
        assert out.returncode == 0, out.stderr
        files = list((data / "buckets" / "exports" / "pq").rglob("*.parquet"))
        assert files and not any(EMAIL.encode() in f.read_bytes() for f in files)
        rows = duckdb.sql(f"SELECT message FROM read_parquet({[str(f) for f in files]}, union_by_name=true) "
                          "ORDER BY timestamp").fetchall()
        assert [r[0] for r in rows] == expected

        # The Audit statement: findings counted per identifier.
        metrics = urllib.request.urlopen(f"{server.endpoint}/metrics", timeout=10).read().decode()
        assert f'logwell_data_protection_findings_total{{log_group="{GROUP}",data_identifier="EmailAddress"}} 2' in metrics
        assert f'logwell_data_protection_findings_total{{log_group="{GROUP}",data_identifier="EmployeeId"}} 1' in metrics

        # The policy survives a restart; deleted, reads are clear again.
        server.restart()
        logs = server.client()
        assert logs.get_data_protection_policy(logGroupIdentifier=GROUP)["policyDocument"] == policy()
        assert [e["message"] for e in logs.filter_log_events(logGroupName=GROUP)["events"]] == expected
        logs.delete_data_protection_policy(logGroupIdentifier=GROUP)
        assert code(lambda: logs.delete_data_protection_policy(logGroupIdentifier=GROUP))[0] == "ResourceNotFoundException"
        assert [e["message"] for e in logs.filter_log_events(logGroupName=GROUP)["events"]] == \
            [plain, as_json, "nothing secret"]
        (described,) = logs.describe_log_groups(logGroupNamePrefix=GROUP)["logGroups"]
        assert "dataProtectionStatus" not in described
    finally:
        server.kill9()


def test_unmasking_needs_logs_unmask(tmp_path):
    admin = ("AKIAADMIN0000000000", "admin-secret")
    reader = ("AKIAREADER000000000", "reader-secret")
    no_unmask = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "logs:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "logs:Unmask", "Resource": "*"}]})
    creds = tmp_path / "credentials.toml"
    creds.write_text(credentials_toml(
        {"access_key_id": admin[0], "secret_access_key": admin[1], "account_id": "000000000000", "user": "admin"},
        {"access_key_id": reader[0], "secret_access_key": reader[1], "account_id": "000000000000", "user": "reader",
         "policy": no_unmask.replace('"', '\\"')}))
    creds.chmod(0o600)
    server = Server(tmp_path / "data", f'[auth]\ncredentials_file = "{creds}"\n').start()

    def client(key):
        return boto3.client("logs", endpoint_url=server.endpoint, region_name="us-east-1",
                            aws_access_key_id=key[0], aws_secret_access_key=key[1],
                            config=botocore.config.Config(retries={"total_max_attempts": 1}))
    try:
        root, r = client(admin), client(reader)
        root.create_log_group(logGroupName=GROUP)
        root.create_log_stream(logGroupName=GROUP, logStreamName="web")
        root.put_data_protection_policy(logGroupIdentifier=GROUP, policyDocument=policy())
        root.put_log_events(logGroupName=GROUP, logStreamName="web",
                            logEvents=[{"timestamp": int(time.time() * 1000), "message": f"mail {EMAIL}"}])
        assert [e["message"] for e in r.filter_log_events(logGroupName=GROUP)["events"]] == [f"mail {stars(EMAIL)}"]
        typ, msg = code(lambda: r.filter_log_events(logGroupName=GROUP, unmask=True))
        assert typ == "AccessDeniedException" and "logs:Unmask" in msg
        assert code(lambda: r.get_log_events(logGroupName=GROUP, logStreamName="web", unmask=True))[0] \
            == "AccessDeniedException"
        assert code(lambda: r.start_query(logGroupName=GROUP, startTime=0, endTime=int(time.time()),
                                          queryString="fields @message | unmask"))[0] == "AccessDeniedException"
        # A body the check cannot read the way the handler does still asks: a member of another
        # type beside `unmask` does not slip the request past logs:Unmask.
        def odd_member(request, **kwargs):
            body = json.loads(request.data)
            body["queryString"] = 0
            request.data = json.dumps(body).encode()
        r.meta.events.register("before-sign.logs.FilterLogEvents", odd_member)
        assert code(lambda: r.filter_log_events(logGroupName=GROUP, unmask=True))[0] == "AccessDeniedException"
        assert code(lambda: r.start_query(logGroupName=GROUP, startTime=0, endTime=int(time.time()),
                                          queryString=f"SOURCE logGroups(namePrefix: ['{GROUP}']) | fields @message | unmask"))[0] \
            == "AccessDeniedException"
        # The account's root (no policy) may.
        assert [e["message"] for e in root.filter_log_events(logGroupName=GROUP, unmask=True)["events"]] == \
            [f"mail {EMAIL}"]
    finally:
        server.kill9()


def test_the_account_policy_masks_every_group_together_with_their_own(tmp_path):
    """PutAccountPolicy(DATA_PROTECTION_POLICY): one policy for the account, cumulative with each
    group's own (CloudWatch's rule), shown by DescribeAccountPolicies, kept across a restart, and
    deleted by name; bad input gets AWS's errors."""
    server = Server(tmp_path / "data", CONFIG).start()
    try:
        logs = server.client(inject_host_prefix=False)
        for g in ("/acct/own", "/acct/plain"):
            logs.create_log_group(logGroupName=g)
            logs.create_log_stream(logGroupName=g, logStreamName="s")
            logs.put_log_events(logGroupName=g, logStreamName="s", logEvents=[
                {"timestamp": int(time.time() * 1000), "message": f"{EMAIL} from {IP}"}])
        logs.put_data_protection_policy(logGroupIdentifier="/acct/own",
                                        policyDocument=policy(("EmailAddress",), custom=False))
        put = logs.put_account_policy(policyName="acct", policyType="DATA_PROTECTION_POLICY",
                                      policyDocument=policy(("IpAddress",), custom=False))["accountPolicy"]
        assert put["policyName"] == "acct" and put["policyType"] == "DATA_PROTECTION_POLICY"
        assert put["scope"] == "ALL" and put["accountId"] == "000000000000" and put["lastUpdatedTime"] > 0

        def messages(g):
            return [e["message"] for e in logs.get_log_events(logGroupName=g, logStreamName="s")["events"]]

        def check():
            assert messages("/acct/own") == [f"{stars(EMAIL)} from {stars(IP)}"]
            assert messages("/acct/plain") == [f"{EMAIL} from {stars(IP)}"]
            assert insights(logs, "fields @message", group="/acct/plain")[0]["@message"] == f"{EMAIL} from {stars(IP)}"
            assert [e["message"] for e in logs.filter_log_events(logGroupName="/acct/own")["events"]] == \
                [f"{stars(EMAIL)} from {stars(IP)}"]
            listed = logs.describe_account_policies(policyType="DATA_PROTECTION_POLICY")["accountPolicies"]
            assert [p["policyName"] for p in listed] == ["acct"]
            groups = {g["logGroupName"]: g for g in logs.describe_log_groups(logGroupNamePrefix="/acct/")["logGroups"]}
            assert groups["/acct/plain"].get("dataProtectionStatus") == "ACTIVATED"
            # The group's own policy is still only its own.
            assert "policyDocument" not in logs.get_data_protection_policy(logGroupIdentifier="/acct/plain")

        check()
        wait = time.time() + 30
        while not list((tmp_path / "data" / "store").rglob("*.parquet")):
            assert time.time() < wait, "a flush"
            time.sleep(0.1)
        server.restart()
        logs = server.client(inject_host_prefix=False)
        check()

        assert logs.describe_account_policies(policyType="DATA_PROTECTION_POLICY", policyName="other")["accountPolicies"] == []
        assert code(lambda: logs.put_account_policy(policyName="x", policyType="DATA_PROTECTION_POLICY",
                                                    policyDocument="{}"))[0] == "InvalidParameterException"
        assert code(lambda: logs.put_account_policy(policyName="x", policyType="TRANSFORMER_POLICY",
                                                    policyDocument=policy()))[0] == "InvalidParameterException"
        assert code(lambda: logs.delete_account_policy(policyName="other", policyType="DATA_PROTECTION_POLICY"))[0] == \
            "ResourceNotFoundException"
        logs.delete_account_policy(policyName="acct", policyType="DATA_PROTECTION_POLICY")
        assert messages("/acct/plain") == [f"{EMAIL} from {IP}"]
        assert messages("/acct/own") == [f"{stars(EMAIL)} from {IP}"]
        assert logs.describe_account_policies(policyType="DATA_PROTECTION_POLICY")["accountPolicies"] == []
    finally:
        server.kill9()
