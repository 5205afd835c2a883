"""The end-to-end benchmark harness runs (small sizes) and reports every figure it promises."""
import os
import re
import subprocess
from pathlib import Path

import pytest

from conftest import logwell_bin

ROOT = Path(__file__).resolve().parent.parent


def test_e2e_benchmark_harness_reports_its_figures():
    e2e = os.environ.get("LOGWELL_E2E_BIN") or str(Path(logwell_bin()).with_name("e2e"))
    if not Path(e2e).exists():
        pytest.fail(f"benchmark harness not built: {e2e}")
    out = subprocess.run(
        [e2e, "--events", "20000", "--clients", "2", "--batch", "5000", "--while-compacting-s", "1",
         "--logwell", logwell_bin(),
         "--loghub", str(ROOT.parent / "shared" / "datasets" / "loghub-2k")],
        capture_output=True, text=True, timeout=300, check=True,
    ).stdout
    assert re.search(r"ingest: \d+ events/s wall", out), out
    assert re.search(r"stream of 10000 events", out), out
    assert re.search(r"generated JSON logs: [\d.]+ bytes/event", out), out
    assert re.search(r"objects per GB stored: [\d.]+", out), out
    assert re.search(r"compaction \(zstd 15, split messages where smaller\): \d+ MB of raw text rewritten", out), out
    assert re.search(r"while compacting: \d+ events/s wall", out), out
    assert re.search(r"with compaction idle: \d+ events/s wall", out), out
    if (ROOT.parent / "shared" / "datasets" / "loghub-2k").exists():
        assert re.search(r"loghub 2k \(16 files, 32000 lines", out), out
        # Per file and all-in, fresh and compacted, next to zstd -19 and xz -9e of the raw files.
        assert re.search(r"\| Apache \| 2000 \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+x \|", out), out
        assert re.search(r"\| all-in \(every byte of the store\) \| 32000 \|", out), out


def test_query_benchmark_runs_against_duckdb_and_agrees():
    bench = str(Path(logwell_bin()).with_name("query-bench"))
    if not Path(bench).exists():
        pytest.fail(f"query benchmark not built: {bench}")
    import sys
    out = subprocess.run(
        [bench, "--events", "30000", "--clients", "2", "--runs", "1", "--later-s", "1", "--logwell", logwell_bin(),
         "--python", sys.executable],
        capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    rows = [l for l in out.stdout.splitlines() if l.startswith("| ") and "ms |" in l]
    # Each of the 13 queries fresh and settled.
    assert len(rows) == 26, out.stdout
    # Every query answered the same as DuckDB over the same events.
    assert all(l.rstrip().endswith("| yes |") for l in rows), out.stdout
    assert len(re.findall(r"\| geometric mean \|.*\| [\d.]+x \|", out.stdout)) == 2, out.stdout
    assert re.search(r"encryption at rest: settled queries take [\d.]+x their unencrypted time", out.stdout), out.stdout
    # Where the fresh events were, and the same queries a minute into an investigation.
    assert re.search(r"fresh queries start: \d+ events in segments, \d+ MB buffered", out.stdout), out.stdout
    assert re.search(r"a minute in: \d+ events in segments", out.stdout), out.stdout


def test_live_tail_benchmark_reports_latency_and_ingest():
    bench = str(Path(logwell_bin()).with_name("tail-bench"))
    if not Path(bench).exists():
        pytest.fail(f"live tail benchmark not built: {bench}")
    out = subprocess.run(
        [bench, "--seconds", "1", "--clients", "2", "--batch", "200", "--sessions", "1,3",
         "--logwell", logwell_bin()],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert re.search(r"sustained ingest, no session: \d+ events/s", out.stdout), out.stdout
    rows = [l for l in out.stdout.splitlines() if re.match(r"\| \d+ \| p50", l)]
    assert [r.split("|")[1].strip() for r in rows] == ["1", "3"], out.stdout
    # Every probe reached every session (nothing else is sampled away at this rate).
    for r in rows:
        seen, expected = re.search(r"(\d+) of (\d+)", r).groups()
        assert seen == expected and int(seen) > 0, out.stdout


def test_delivery_benchmark_reports_throughput_lag_and_backlog():
    bench = str(Path(logwell_bin()).with_name("delivery-bench"))
    if not Path(bench).exists():
        pytest.fail(f"delivery benchmark not built: {bench}")
    out = subprocess.run(
        [bench, "--seconds", "1", "--clients", "2", "--batch", "200", "--outage", "1", "--logwell", logwell_bin()],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert re.search(r"sustained ingest, no subscription: \d+ events/s", out.stdout), out.stdout
    assert re.search(r"\| delivered to the Lambda-style HTTP receiver \| \d+ events in [\d.]+ s: \d+ events/s \|", out.stdout), out.stdout
    assert re.search(r"\| lag, acknowledgement to receipt, during ingest \| p50 [\d.]+ ms", out.stdout), out.stdout
    assert re.search(r"\| lag, acknowledgement to receipt, at a steady \d+ events/s \| p50 [\d.]+ ms.*\([1-9]\d* probes\)", out.stdout), out.stdout
    assert re.search(r"\| backlog after a 1 s outage \| \d+ events drained", out.stdout), out.stdout
    assert re.search(r"\| delivered to Firehose \(local bucket[^|]*\| \d+ events in [\d.]+ s: \d+ events/s \|", out.stdout), out.stdout
    assert re.search(r"\| delivered to Kinesis \(NATS JetStream\)[^|]*\| \d+ events in", out.stdout), out.stdout
    assert re.search(r"\| ingest with two metric filters \| \d+ events/s", out.stdout), out.stdout
    for kind in ["text", "Parquet"]:
        assert re.search(rf"\| export, {kind}[^|]*\| [1-9]\d* events, \d+ MB in [\d.]+ s: \d+ MB/s \|", out.stdout), out.stdout


def test_auth_benchmark_reports_the_cost_of_verifying_signatures():
    bench = str(Path(logwell_bin()).with_name("auth-bench"))
    if not Path(bench).exists():
        pytest.fail(f"auth benchmark not built: {bench}")
    out = subprocess.run([bench, "--seconds", "1", "--clients", "2", "--batch", "200", "--logwell", logwell_bin()],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert re.search(r"\| no credentials \(signatures not checked\) \| \d+ events/s \| [\d.]+ µs \|", out.stdout), out.stdout
    for what in ["SigV4 verified", r"SigV4 verified \+ identity policy"]:
        assert re.search(rf"\| {what} \| \d+ events/s \([+-][\d.]+%\) \| [\d.]+ µs \([+-][\d.]+%\) \|", out.stdout), out.stdout


def test_fields_benchmark_reports_extraction_and_flush_costs():
    bench = str(Path(logwell_bin()).with_name("fields-bench"))
    if not Path(bench).exists():
        pytest.fail(f"fields benchmark not built: {bench}")
    out = subprocess.run([bench, "--events", "2000", "--runs", "1"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    for paths in ["level", "status,latency_ms,user"]:
        assert re.search(rf"extract {paths} +[\d.]+ ns/event +\d+ MB/s", out.stdout), out.stdout
    assert re.search(r"encode a segment without field columns +[\d.]+ ns/event", out.stdout), out.stdout
    # The generated lines have seven fields; the trace id is an identifier and gets no column.
    assert re.search(r"encode a segment with 6 field columns \(2 numeric\) +[\d.]+ ns/event \(\+-?[\d.]+ ns/event\)", out.stdout), out.stdout
