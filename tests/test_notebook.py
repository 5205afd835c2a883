"""The notebook in notebooks/ reads logwell's Parquet archive with DuckDB alone and must agree
with what was ingested through the API."""
import os
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from conftest import Server

ROOT = Path(__file__).resolve().parent.parent


def test_events_per_minute_notebook_counts_what_was_ingested(tmp_path):
    # The notebook reads segments with DuckDB alone: plain Parquet.
    server = Server(tmp_path / "data", "[storage]\nencrypt = false\n").start()
    c = server.client()
    c.create_log_group(logGroupName="/nb/app")
    minute = 60_000
    base = (int(time.time() * 1000) // minute - 30) * minute
    expected = {}
    for stream, per_min in [("api", [5, 7, 2]), ("worker", [1, 0, 9])]:
        c.create_log_stream(logGroupName="/nb/app", logStreamName=stream)
        events = []
        for m, n in enumerate(per_min):
            events += [{"timestamp": base + m * minute + i, "message": f"{stream} {m} {i}"} for i in range(n)]
            if n:
                expected[(stream, m)] = n
        c.put_log_events(logGroupName="/nb/app", logStreamName=stream, logEvents=events)
    assert server.stop() == 0  # clean stop flushes to Parquet

    nb = nbformat.read(ROOT / "notebooks" / "events_per_minute.ipynb", as_version=4)
    plot = tmp_path / "plot.png"
    os.environ["LOGWELL_STORE"] = str(tmp_path / "data" / "store")
    os.environ["LOGWELL_PLOT"] = str(plot)
    try:
        NotebookClient(nb, timeout=120, kernel_name="python3",
                       resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    finally:
        os.environ.pop("LOGWELL_STORE")
        os.environ.pop("LOGWELL_PLOT")
    out = "".join(o.get("text", "") for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs)
    assert f"total events: {sum(expected.values())}" in out
    assert "1 groups" in out
    assert plot.stat().st_size > 1000
    # The per-minute table the notebook built matches what was sent.
    table = nb.cells[2].outputs[0]["data"]["text/plain"]
    assert "worker" in table and "api" in table
