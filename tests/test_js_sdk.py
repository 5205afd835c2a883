"""The AWS SDK for JavaScript v3 (@aws-sdk/client-cloudwatch-logs, pinned in tests/js) against a
server that verifies signatures: with valid credentials it creates, puts, gets, filters, queries,
live-tails and deletes; a wrong secret, a body changed after signing and a clock 20 minutes slow are
refused with AWS's errors."""
import json
import shutil
import subprocess
from pathlib import Path

from conftest import Server
from test_auth import ALICE, TEMP, credentials_toml, entries

JS = Path(__file__).parent / "js"


def run_scenarios(server, *credentials):
    assert (JS / "node_modules" / "@aws-sdk" / "client-cloudwatch-logs").is_dir(), \
        "run `npm ci` in tests/js (scripts/test does)"
    out = subprocess.run([shutil.which("node") or "node", "--no-warnings", "scenarios.mjs", server.endpoint, *credentials],
                         cwd=JS, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_js_sdk_passes_the_scenarios_and_bad_signatures_are_refused(tmp_path):
    creds = tmp_path / "credentials.toml"
    creds.write_text(credentials_toml(*entries()))
    creds.chmod(0o600)
    server = Server(tmp_path / "data", f'[auth]\ncredentials_file = "{creds}"\n').start()
    try:
        for credentials in [ALICE, TEMP]:
            seen = run_scenarios(server, *credentials)
            assert seen["rejected"] is None
            assert seen["groups"] == ["/js/app"]
            assert seen["get"] == ['{"level":"INFO","ms":12}', '{"level":"ERROR","ms":340}', "plain text line"]
            assert seen["filter"] == ['{"level":"ERROR","ms":340}']
            assert seen["query"] == [{"total": "352", "n": "2"}]
            assert seen["tail"] == ["start", "tailed line"]
            assert seen["missing"]["name"] == "ResourceNotFoundException"
            assert seen["afterDelete"] == []
            for refused in ["wrongSecret", "tampered", "skewed"]:
                assert seen[refused]["name"] == "InvalidSignatureException", (refused, seen[refused])
                assert seen[refused]["status"] == 400
                assert credentials[1] not in seen[refused]["message"]
            assert seen["skewed"]["message"].startswith("Signature expired")
    finally:
        server.kill9()
