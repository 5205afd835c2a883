"""One writer per store: a second `logwell serve` on the same data directory, or on the same bucket
prefix from another node, refuses to start while the first ingests, and the first loses nothing."""
import subprocess
import time

from conftest import FAST_CONFIG, Server, free_port, logwell_bin
from test_durability import GROUP, Writer, all_ids, s3_config, s3_server  # noqa: F401  (fixture)


def start_writers(server, n=2):
    c = server.client()
    c.create_log_group(logGroupName=GROUP)
    ws = []
    for i in range(n):
        c.create_log_stream(logGroupName=GROUP, logStreamName=f"w{i}")
        ws.append(Writer(server, f"w{i}", 100))
    for w in ws:
        w.start()
    return ws


def stop_writers(ws):
    for w in ws:
        w.stop.set()
    for w in ws:
        w.join(30)
    return [i for w in ws for i in w.acked]


def assert_exactly_once(server, acked):
    counts = all_ids(server.client())
    assert [i for i in acked if counts[i] != 1] == []
    assert all(n == 1 for n in counts.values())


def second_serve(data_dir, config_path):
    """Runs a second server; it must exit by itself (refusing), not serve."""
    return subprocess.run(
        [logwell_bin(), "serve", "--data-dir", str(data_dir), "--listen", f"127.0.0.1:{free_port()}",
         "--config", str(config_path)],
        capture_output=True, text=True, timeout=60)


def test_second_server_on_the_same_data_dir_refuses(tmp_path):
    first = Server(tmp_path / "data", FAST_CONFIG).start()
    try:
        ws = start_writers(first)
        time.sleep(1.5)
        second = second_serve(first.data_dir, first.config_path)
        assert second.returncode != 0
        assert f"in use by another logwell process (pid {first.proc.pid})" in second.stderr, second.stderr
        time.sleep(1.5)
        acked = stop_writers(ws)
        assert len(acked) > 500
        assert_exactly_once(first, acked)
        first.restart()
        assert_exactly_once(first, acked)
    finally:
        first.kill9()


def test_second_node_on_the_same_bucket_prefix_refuses_until_the_first_stops(tmp_path, s3_server):
    endpoint, _ = s3_server
    first = Server(tmp_path / "node1", s3_config(endpoint, tmp_path / "keyring")).start()
    try:
        ws = start_writers(first)
        time.sleep(2.5)  # flushes have published manifests and segments meanwhile
        node2 = Server(tmp_path / "node2", s3_config(endpoint, tmp_path / "keyring"))
        second = second_serve(node2.data_dir, node2.config_path)
        assert second.returncode != 0
        assert "in use by another logwell" in second.stderr and f"pid {first.proc.pid}" in second.stderr, \
            second.stderr
        time.sleep(1.5)
        acked = stop_writers(ws)
        assert len(acked) > 500
        assert_exactly_once(first, acked)
        # A clean stop releases the lease: the other node starts at once and serves everything.
        assert first.stop() == 0
        node2.start()
        try:
            assert_exactly_once(node2, acked)
        finally:
            node2.kill9()
    finally:
        first.kill9()
