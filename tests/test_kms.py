"""Customer KMS keys, against moto's KMS in server mode: CreateLogGroup with `kmsKeyId`,
AssociateKmsKey and DisassociateKmsKey wrap a group's data key with a KMS key (the catalog keeps
only KMS's ciphertext); a disabled key stops that group's reads and writes with KMS's own error
while every other group goes on, and events accepted before still reach their segment; a KMS that
cannot be reached makes the group answer KeyUnavailableException; keys that do not exist are
refused as AWS words it; without `[kms]` a `kmsKeyId` is refused, never silently ignored.
"""
import time
import uuid

import pytest
import zstandard

from conftest import Server, aws_cli, free_port, moto_server
from test_encryption import all_bytes, insights, put, read_all, segments, wait_for

FAST = """
[storage]
flush_age = 1
maintenance_interval = 1
"""


def kms_config(endpoint):
    return FAST + f"""
[kms]
endpoint = "{endpoint}"
access_key_id = "testing"
secret_access_key = "testing"
key_cache_secs = 1
"""


@pytest.fixture
def kms(tmp_path):
    proc, endpoint, client = moto_server(tmp_path / "moto-kms.log", "kms", lambda c: c.list_keys())
    yield endpoint, client
    proc.kill()
    proc.wait()


def error_code(call, *args, **kwargs):
    with pytest.raises(Exception) as e:
        call(*args, **kwargs)
    return e.value.response["Error"]["Code"], e.value.response["Error"]["Message"]


def describe(logs, name):
    return logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"][0]


def test_kms_keys_wrap_group_keys_and_a_disabled_key_stops_only_its_group(tmp_path, kms):
    endpoint, kms_client = kms
    key_a = kms_client.create_key(Description="logs A")["KeyMetadata"]
    key_b = kms_client.create_key(Description="logs B")["KeyMetadata"]
    kms_client.create_alias(AliasName="alias/logs-b", TargetKeyId=key_b["KeyId"])
    data = tmp_path / "data"
    server = Server(data, kms_config(endpoint)).start()
    secret = f"secret-{uuid.uuid4().hex}"
    try:
        logs = server.client()
        logs.create_log_group(logGroupName="/kms/a", kmsKeyId=key_a["Arn"])
        assert describe(logs, "/kms/a")["kmsKeyId"] == key_a["Arn"]
        logs.create_log_group(logGroupName="/kms/plain")
        for g in ("/kms/a", "/kms/plain"):
            logs.create_log_stream(logGroupName=g, logStreamName="s")
            put(logs, g, "s", [f"{g} {secret} {i}" for i in range(20)])
        wait_for(lambda: len(segments(data)) >= 2, what="segments of both groups")
        for path, content in all_bytes(data).items():
            assert secret.encode() not in content, f"{path} holds the plaintext"
        assert read_all(logs, "/kms/a", "s") == [f"/kms/a {secret} {i}" for i in range(20)]
        n = insights(logs, "/kms/a", f"filter @message like /{secret}/ | stats count(*) as n")
        assert n[0]["n"] == "20"

        # A key that does not exist: refused as AWS words it, and no group is made.
        missing = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000"
        code, message = error_code(logs.create_log_group, logGroupName="/kms/bad", kmsKeyId=missing)
        assert code == "InvalidParameterException"
        assert "The specified KMS key does not exist or is not allowed to be used with Arn " \
               "'arn:aws:logs:us-east-1:000000000000:log-group:/kms/bad'" in message
        assert not logs.describe_log_groups(logGroupNamePrefix="/kms/bad")["logGroups"]
        code, message = error_code(logs.associate_kms_key, logGroupName="/kms/plain", kmsKeyId=missing)
        assert code == "AccessDeniedException"
        assert "/kms/plain" in message
        assert "kmsKeyId" not in describe(logs, "/kms/plain")
        code, _ = error_code(logs.associate_kms_key, logGroupName="/kms/nope", kmsKeyId=key_b["Arn"])
        assert code == "ResourceNotFoundException"
        code, _ = error_code(logs.associate_kms_key, logGroupName="/kms/plain", kmsKeyId=key_b["Arn"],
                             resourceIdentifier="arn:aws:logs:us-east-1:000000000000:log-group:/kms/plain")
        assert code == "InvalidParameterException"

        # Associate by alias through a log group ARN: old and new events read back.
        logs.associate_kms_key(resourceIdentifier="arn:aws:logs:us-east-1:000000000000:log-group:/kms/plain",
                               kmsKeyId="alias/logs-b")
        assert describe(logs, "/kms/plain")["kmsKeyId"] == "alias/logs-b"
        put(logs, "/kms/plain", "s", ["after associate"])
        assert read_all(logs, "/kms/plain", "s")[-1] == "after associate"
        assert len(read_all(logs, "/kms/plain", "s")) == 21

        # Disable A: within the cache time its group refuses reads, writes and queries with KMS's
        # error, while events put just before are still flushed; the other group goes on.
        put(logs, "/kms/a", "s", ["just before disable"])
        before = len(segments(data))
        kms_client.disable_key(KeyId=key_a["KeyId"])
        time.sleep(2.5)
        code, message = error_code(logs.get_log_events, logGroupName="/kms/a", logStreamName="s")
        assert code == "DisabledException", message
        assert key_a["Arn"] in message
        assert secret not in message
        code, _ = error_code(put, logs, "/kms/a", "s", ["while disabled"])
        assert code == "DisabledException"
        code, _ = error_code(logs.filter_log_events, logGroupName="/kms/a")
        assert code == "DisabledException"
        code, _ = error_code(logs.start_query, logGroupName="/kms/a", startTime=0,
                             endTime=int(time.time()) + 60, queryString="stats count(*)")
        assert code == "DisabledException"
        wait_for(lambda: len(segments(data)) > before, what="the flush of events accepted before the disable")
        put(logs, "/kms/plain", "s", ["unaffected"])
        assert read_all(logs, "/kms/plain", "s")[-1] == "unaffected"
        logs.create_log_group(logGroupName="/kms/other")
        logs.create_log_stream(logGroupName="/kms/other", logStreamName="s")
        put(logs, "/kms/other", "s", ["other"])
        assert read_all(logs, "/kms/other", "s") == ["other"]

        # Enabled again: everything reads back, including what was flushed while it was disabled.
        kms_client.enable_key(KeyId=key_a["KeyId"])
        time.sleep(1.5)
        got = read_all(logs, "/kms/a", "s")
        assert got == [f"/kms/a {secret} {i}" for i in range(20)] + ["just before disable"]

        # Disassociate: the group's key goes back to the keyring; its data stays readable,
        # also after a restart with no KMS configured at all.
        logs.disassociate_kms_key(logGroupName="/kms/plain")
        assert "kmsKeyId" not in describe(logs, "/kms/plain")
        logs.disassociate_kms_key(logGroupName="/kms/plain")  # nothing associated: a no-op
        server.stop()
        no_kms = Server(data, FAST, port=server.port).start()
        try:
            logs = no_kms.client()
            assert read_all(logs, "/kms/plain", "s")[-2:] == ["after associate", "unaffected"]
            # A's key needs the KMS, which this server does not have.
            code, message = error_code(logs.get_log_events, logGroupName="/kms/a", logStreamName="s")
            assert code == "KeyUnavailableException", message
            assert read_all(logs, "/kms/other", "s") == ["other"]
        finally:
            no_kms.stop()

        # A KMS that cannot be reached: the same, and the server still starts.
        down = Server(data, kms_config(f"http://127.0.0.1:{free_port()}"), port=server.port).start()
        try:
            logs = down.client()
            code, _ = error_code(logs.get_log_events, logGroupName="/kms/a", logStreamName="s")
            assert code == "KeyUnavailableException"
            assert read_all(logs, "/kms/other", "s") == ["other"]
        finally:
            down.stop()

        # Back with the KMS: A reads back whole after the restarts.
        server.config_path.write_text(kms_config(endpoint))
        server.start()
        logs = server.client()
        assert read_all(logs, "/kms/a", "s") == [f"/kms/a {secret} {i}" for i in range(20)] + ["just before disable"]
        # The AWS CLI speaks the same operations.
        out = aws_cli(server.endpoint, "logs", "associate-kms-key", "--log-group-name", "/kms/other",
                      "--kms-key-id", key_b["Arn"])
        assert out.returncode == 0, out.stderr
        assert describe(logs, "/kms/other")["kmsKeyId"] == key_b["Arn"]
        assert read_all(logs, "/kms/other", "s") == ["other"]
    finally:
        server.kill9()


def test_kms_key_id_without_a_kms_is_refused(server, logs):
    key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    code, message = error_code(logs.create_log_group, logGroupName="/nokms", kmsKeyId=key)
    assert code == "InvalidParameterException"
    assert "no KMS configured" in message
    logs.create_log_group(logGroupName="/nokms")
    code, _ = error_code(logs.associate_kms_key, logGroupName="/nokms", kmsKeyId=key)
    assert code == "InvalidParameterException"
    code, _ = error_code(logs.associate_kms_key, kmsKeyId=key,
                         resourceIdentifier="arn:aws:logs:us-east-1:000000000000:query-result:*")
    assert code == "InvalidParameterException"


def newest_manifest(data):
    """The newest catalog manifest's JSON (stored zstd-compressed)."""
    newest = sorted((data / "store" / "catalog").glob("manifest-*.json.zst"))[-1]
    return zstandard.ZstdDecompressor().decompressobj().decompress(newest.read_bytes()).decode()


def test_a_kms_outage_at_start_holds_up_no_other_group(tmp_path, kms):
    """Events of a KMS group still only in the WAL when the server restarts with its KMS out of
    reach: the flush writes them under a held key (wrapped by the keyring, as the WAL was sealed)
    instead of failing every group's flush; the group stays unreadable until the KMS answers, and
    compaction then rewrites the held segment under the group's key."""
    endpoint, kms_client = kms
    key = kms_client.create_key()["KeyMetadata"]
    data = tmp_path / "data"
    slow = kms_config(endpoint).replace("flush_age = 1", "flush_age = 3600")
    server = Server(data, slow).start()
    secret = f"held-{uuid.uuid4().hex}"
    try:
        logs = server.client()
        logs.create_log_group(logGroupName="/held/kms", kmsKeyId=key["Arn"])
        logs.create_log_group(logGroupName="/held/plain")
        for g in ("/held/kms", "/held/plain"):
            logs.create_log_stream(logGroupName=g, logStreamName="s")
            put(logs, g, "s", [f"{g} {secret} {i}" for i in range(10)])
        server.kill9()
        assert not segments(data)

        # KMS out of reach: the plain group's events are flushed, and the KMS group's too, held.
        server.config_path.write_text(kms_config(f"http://127.0.0.1:{free_port()}")
                                      .replace("maintenance_interval = 1", "maintenance_interval = 3600"))
        server.start()
        logs = server.client()
        wait_for(lambda: len(segments(data)) >= 2, what="both groups flushed")
        assert '"held_key"' in newest_manifest(data)
        for path, content in all_bytes(data).items():
            assert secret.encode() not in content, f"{path} holds the plaintext"
        assert read_all(logs, "/held/plain", "s") == [f"/held/plain {secret} {i}" for i in range(10)]
        code, _ = error_code(logs.get_log_events, logGroupName="/held/kms", logStreamName="s")
        assert code == "KeyUnavailableException"
        server.stop()

        # The KMS back: everything reads, and compaction puts the held segment under the group key.
        server.config_path.write_text(kms_config(endpoint))
        server.start()
        logs = server.client()
        assert read_all(logs, "/held/kms", "s") == [f"/held/kms {secret} {i}" for i in range(10)]
        n = insights(logs, "/held/kms", f"filter @message like /{secret}/ | stats count(*) as n")
        assert n[0]["n"] == "10"
        wait_for(lambda: '"held_key"' not in newest_manifest(data), what="the held segment rewritten")
        assert read_all(logs, "/held/kms", "s") == [f"/held/kms {secret} {i}" for i in range(10)]
    finally:
        server.kill9()
