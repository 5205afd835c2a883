"""The AWS CLI (v1) against logwell: what a user typing `aws logs ...` sees.

Each CLI start costs about a second, so calls that do not depend on each other run side by side.
"""
import json
import time
from concurrent.futures import ThreadPoolExecutor

from conftest import aws_cli


def now_ms() -> int:
    return int(time.time() * 1000)


def parallel(server, *calls, check=True):
    """Runs several `aws logs ...` commands at once; returns their CompletedProcess results in order."""
    with ThreadPoolExecutor(len(calls)) as pool:
        futures = [pool.submit(aws_cli, server.endpoint, "logs", *args, check=check) for args in calls]
        return [f.result() for f in futures]


def parsed(result):
    return json.loads(result.stdout) if result.stdout.strip() else {}


def test_aws_cli_end_to_end(server, tmp_path):
    g, s = "/cli/app", "web-1"
    (r,) = parallel(server, ["create-log-group", "--log-group-name", g])
    assert r.returncode == 0 and r.stdout.strip() == ""
    parallel(server, ["create-log-stream", "--log-group-name", g, "--log-stream-name", s],
             ["put-retention-policy", "--log-group-name", g, "--retention-in-days", "30"])

    # Two events inline, and 2,500 more from two files (the CLI reads file:// arguments).
    t = now_ms() - 10 * 60_000
    inline = [{"timestamp": t, "message": "hello from the cli"}, {"timestamp": t + 1, "message": "second line"}]
    base = now_ms() - 30 * 60_000
    bulk = [{"timestamp": base + i, "message": f"bulk {i} {'ERROR' if i % 5 == 0 else 'INFO'}"} for i in range(2500)]
    files = []
    for part, chunk in enumerate([bulk[:1500], bulk[1500:]]):
        f = tmp_path / f"events{part}.json"
        f.write_text(json.dumps(chunk))
        files.append(f"file://{f}")
    puts = parallel(server,
                    ["put-log-events", "--log-group-name", g, "--log-stream-name", s, "--log-events",
                     json.dumps(inline)],
                    *[["put-log-events", "--log-group-name", g, "--log-stream-name", s, "--log-events", f]
                      for f in files])
    for p in puts:
        assert "rejectedLogEventsInfo" not in parsed(p)

    groups, streams, got, filtered = map(parsed, parallel(
        server,
        ["describe-log-groups", "--log-group-name-prefix", "/cli/"],
        ["describe-log-streams", "--log-group-name", g],
        ["get-log-events", "--log-group-name", g, "--log-stream-name", s, "--start-from-head", "--limit", "3000"],
        # Pages of 1,000: the CLI follows nextToken and merges the pages.
        ["filter-log-events", "--log-group-name", g, "--page-size", "1000"],
    ))
    (group,) = groups["logGroups"]
    assert group["logGroupName"] == g
    assert group["retentionInDays"] == 30
    assert group["arn"].endswith(f":log-group:{g}:*") and group["arn"] == group["logGroupArn"] + ":*"
    (stream,) = streams["logStreams"]
    assert stream["logStreamName"] == s
    assert stream["firstEventTimestamp"] == base and stream["lastEventTimestamp"] == t + 1

    everything = bulk + inline
    assert [(e["timestamp"], e["message"]) for e in got["events"]] == [(e["timestamp"], e["message"])
                                                                        for e in everything]
    assert got["nextForwardToken"] and got["nextBackwardToken"]
    assert len(filtered["events"]) == 2502
    assert [e["message"] for e in filtered["events"]] == [e["message"] for e in everything]
    assert {e["logStreamName"] for e in filtered["events"]} == {s}

    parallel(server, ["tag-resource", "--resource-arn", group["logGroupArn"], "--tags", "team=core,env=dev"])
    (tags,) = parallel(server, ["list-tags-for-resource", "--resource-arn", group["logGroupArn"]])
    assert parsed(tags) == {"tags": {"team": "core", "env": "dev"}}

    parallel(server, ["delete-log-group", "--log-group-name", g])
    (after,) = parallel(server, ["describe-log-groups"])
    assert parsed(after)["logGroups"] == []


def test_aws_cli_errors(server):
    aws_cli(server.endpoint, "logs", "create-log-group", "--log-group-name", "dup")
    dup, missing, bad = parallel(
        server,
        ["create-log-group", "--log-group-name", "dup"],
        ["describe-log-streams", "--log-group-name", "missing"],
        ["put-retention-policy", "--log-group-name", "dup", "--retention-in-days", "2"],
        check=False,
    )
    assert dup.returncode != 0 and "ResourceAlreadyExistsException" in dup.stderr, dup.stderr
    assert missing.returncode != 0 and "ResourceNotFoundException" in missing.stderr, missing.stderr
    assert bad.returncode != 0 and "InvalidParameterException" in bad.stderr, bad.stderr
