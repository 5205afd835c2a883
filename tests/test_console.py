"""The web console in a real browser: Debian's Chromium driven by Playwright for Python.

Open the console, see log groups and streams, start a live tail, put events and see them, pause,
put more, resume and see all of them in order, search and see matches highlighted, filter by a
pattern, and see the sampled notice. A screenshot of the live tail is kept as a test artifact
(`$LOGWELL_ARTIFACTS`, default `target/test-artifacts/`).
"""
import os
import time
from pathlib import Path

import pytest

playwright_sync = pytest.importorskip("playwright.sync_api")
from playwright.sync_api import expect, sync_playwright  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
# Chromium as the machine's notes start it: headless, and no background connections (the
# network is closed; without these flags it keeps trying).
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def now_ms() -> int:
    return int(time.time() * 1000)


def put(logs, group, stream, messages):
    t = now_ms()
    logs.put_log_events(logGroupName=group, logStreamName=stream,
                        logEvents=[{"timestamp": t, "message": m} for m in messages])


@pytest.fixture
def page():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (.ci/run does)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        yield page
        browser.close()
        assert not errors, errors


def artifacts() -> Path:
    d = Path(os.environ.get("LOGWELL_ARTIFACTS", ROOT / "target" / "test-artifacts"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def test_console_groups_streams_and_live_tail(server, logs, page):
    logs.create_log_group(logGroupName="/console/app")
    logs.put_retention_policy(logGroupName="/console/app", retentionInDays=7)
    for s in ["web-1", "db-1"]:
        logs.create_log_stream(logGroupName="/console/app", logStreamName=s)
    put(logs, "/console/app", "web-1", ["stored before the tail"])

    # Log groups, then a group's streams.
    page.goto(f"{server.endpoint}/console")
    expect(page.locator("#groups")).to_contain_text("/console/app")
    expect(page.locator("#groups")).to_contain_text("7 days")
    page.get_by_role("link", name="/console/app", exact=True).click()
    expect(page.locator("#streams")).to_contain_text("web-1")
    expect(page.locator("#streams")).to_contain_text("db-1")

    # Live tail of the group: events put now appear, coloured by level.
    page.click("#tail-this")
    expect(page.locator("#tail-state")).to_have_text("live")
    put(logs, "/console/app", "web-1", ["INFO GET /index 200", "ERROR payment failed"])
    rows = page.locator("#rows .row")
    expect(rows).to_have_count(2)
    expect(rows.nth(1)).to_contain_text("ERROR payment failed")
    expect(rows.nth(1)).to_have_class("row level-error")
    expect(rows.nth(0)).to_contain_text("web-1")

    # Pause: new events are kept, not shown; resume shows all of them, in order.
    page.click("#tail-pause")
    expect(page.locator("#tail-state")).to_have_text("paused")
    put(logs, "/console/app", "db-1", [f"paused {i}" for i in range(3)])
    expect(page.locator("#paused-count")).to_have_text("3 new while paused")
    expect(rows).to_have_count(2)
    page.click("#tail-pause")
    expect(rows).to_have_count(5)
    assert [rows.nth(i).locator(".message").inner_text() for i in range(5)] == [
        "INFO GET /index 200", "ERROR payment failed", "paused 0", "paused 1", "paused 2"]

    # Search highlights matches in what was shown.
    page.fill("#tail-search", "PAUSED")
    expect(page.locator("#rows mark")).to_have_count(3)
    expect(page.locator("#match-count")).to_have_text("3 matches")
    expect(page.locator("#eps")).to_contain_text("events/s")
    page.screenshot(path=str(artifacts() / "console-live-tail.png"), full_page=True)

    # A filter pattern: only matching events; a burst past 500 a second shows the sampled notice.
    page.click("#tail-start")  # stop
    expect(page.locator("#tail-state")).to_have_text("stopped")
    page.click("#tail-clear")
    page.fill("#tail-search", "")
    page.fill("#tail-filter", '{ $.level = "error" }')
    page.click("#tail-start")
    expect(page.locator("#tail-state")).to_have_text("live")
    put(logs, "/console/app", "web-1", ['{"level":"info","n":1}', '{"level":"error","n":2}'])
    expect(rows).to_have_count(1)
    expect(rows.nth(0)).to_contain_text('"n":2')
    put(logs, "/console/app", "web-1", ['{"level":"error","burst":%d}' % i for i in range(1200)])
    expect(page.locator("#sampled")).to_be_visible(timeout=10_000)
    expect(rows).to_have_count(501, timeout=10_000)


def test_console_shows_cloudwatch_errors_for_a_bad_tail(server, logs, page):
    page.goto(f"{server.endpoint}/console#/tail")
    page.fill("#tail-groups", "/console/missing")
    page.click("#tail-start")
    expect(page.locator("#error")).to_contain_text("ResourceNotFoundException")
    expect(page.locator("#tail-state")).to_have_text("stopped")


def test_live_tail_server_sent_events_work_with_curl(server, logs):
    """`curl -N` on /live-tail prints Server-Sent Events as they come."""
    import json
    import subprocess
    logs.create_log_group(logGroupName="/console/curl")
    logs.create_log_stream(logGroupName="/console/curl", logStreamName="s")
    proc = subprocess.Popen(["curl", "-sN", f"{server.endpoint}/live-tail?group=/console/curl&filter=hello"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "event: sessionStart\n"
        start = json.loads(proc.stdout.readline().removeprefix("data: "))
        assert start["logGroupIdentifiers"] == ["/console/curl"] and start["logEventFilterPattern"] == "hello"
        put(logs, "/console/curl", "s", ["hello curl", "bye"])
        seen = []
        while not seen:
            line = proc.stdout.readline()
            if line.startswith("data: "):
                seen = [e["message"] for e in json.loads(line[6:])["sessionResults"]]
        assert seen == ["hello curl"]
    finally:
        proc.kill()
        proc.wait(10)


def test_console_keeps_tailing_through_unusual_messages(server, logs, page):
    logs.create_log_group(logGroupName="/console/odd")
    logs.create_log_stream(logGroupName="/console/odd", logStreamName="s")
    page.goto(f"{server.endpoint}/console#/tail?groups=/console/odd")
    expect(page.locator("#tail-state")).to_have_text("live")
    # U+2028 is a line end to JavaScript but not to Server-Sent Events; regex characters in a
    # search are searched for as text.
    put(logs, "/console/odd", "s", ["before\u2028after (x) <b>not bold</b>", "next line"])
    rows = page.locator("#rows .row")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("<b>not bold</b>")
    page.fill("#tail-search", "(x")
    expect(page.locator("#rows mark")).to_have_count(1)
    put(logs, "/console/odd", "s", ["still live"])
    expect(rows).to_have_count(3)


def test_console_signs_in_and_signs_every_request_on_a_server_with_credentials(tmp_path, page):
    """With credentials on the server, the console asks for keys (kept in the tab), signs its API
    calls and live tail with SigV4 in the browser, and shows AWS's error for a wrong secret."""
    import boto3
    import botocore.config
    from conftest import Server
    creds = tmp_path / "credentials.toml"
    creds.write_text('[[credentials]]\naccess_key_id = "AKIACONSOLE00000000"\nsecret_access_key = "console/secret+1"\n'
                     'account_id = "000000000000"\nuser = "viewer"\n')
    server = Server(tmp_path / "data", f'[auth]\ncredentials_file = "{creds}"\n').start()
    try:
        logs = boto3.client("logs", endpoint_url=server.endpoint, region_name="us-east-1",
                            aws_access_key_id="AKIACONSOLE00000000", aws_secret_access_key="console/secret+1",
                            config=botocore.config.Config(retries={"total_max_attempts": 1}))
        logs.create_log_group(logGroupName="/signed/app")
        logs.create_log_stream(logGroupName="/signed/app", logStreamName="web")

        page.goto(f"{server.endpoint}/console")
        expect(page.locator("#signin")).to_be_visible()
        expect(page.locator("#error")).to_contain_text("MissingAuthenticationTokenException")

        page.fill("#signin-key", "AKIACONSOLE00000000")
        page.fill("#signin-secret", "not the secret")
        page.click("#signin-submit")
        expect(page.locator("#error")).to_contain_text("InvalidSignatureException")

        page.fill("#signin-key", "AKIACONSOLE00000000")
        page.fill("#signin-secret", "console/secret+1")
        page.click("#signin-submit")
        expect(page.locator("#groups")).to_contain_text("/signed/app")
        expect(page.locator("#signed-in-as")).to_have_text("AKIACONSOLE00000000")

        # The live tail is a signed GET with a query string.
        page.goto(f"{server.endpoint}/console#/tail?groups=%2Fsigned%2Fapp")
        expect(page.locator("#tail-state")).to_have_text("live")
        put(logs, "/signed/app", "web", ["ERROR signed tail works"])
        expect(page.locator("#rows .row")).to_have_count(1)
        expect(page.locator("#rows .row").nth(0)).to_contain_text("signed tail works")

        page.click("#signout")
        page.goto(f"{server.endpoint}/console#/groups")
        expect(page.locator("#signin")).to_be_visible()
    finally:
        server.kill9()
