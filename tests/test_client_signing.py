"""The `logwell` CLI (through logwell-client) signs its requests exactly as botocore does: the
signature a recording endpoint receives is recomputed with botocore's SigV4 signer from the same
request, credentials and timestamp. Region, credentials and endpoint come from the usual AWS
variables and profile files."""
import http.server
import json
import os
import re
import subprocess
import threading

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from conftest import logwell_bin


class Recorder(http.server.BaseHTTPRequestHandler):
    requests: list = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        Recorder.requests.append((dict(self.headers.items()), body))
        answer = json.dumps({"logGroups": []}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/x-amz-json-1.1")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


def record(env_extra: dict, args=("groups",)) -> tuple[dict, bytes, str]:
    Recorder.requests = []
    server = http.server.HTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "LOGWELL_ENDPOINT"}
    env.update(env_extra)
    env.setdefault("AWS_ENDPOINT_URL", endpoint)
    try:
        subprocess.run([logwell_bin(), *args], env=env, check=True, capture_output=True, timeout=60)
    finally:
        server.shutdown()
    headers, body = Recorder.requests[0]
    return {k.lower(): v for k, v in headers.items()}, body, endpoint


def botocore_signature(headers: dict, body: bytes, url: str, key: str, secret: str, token, region: str) -> str:
    signed = re.search(r"SignedHeaders=([^,]+)", headers["authorization"]).group(1).split(";")
    request = AWSRequest(method="POST", url=url + "/", data=body,
                         headers={h: headers[h] for h in signed if h != "host"})
    request.context["timestamp"] = headers["x-amz-date"]
    auth = SigV4Auth(Credentials(key, secret, token), "logs", region)
    return auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)


def test_cli_requests_are_signed_as_botocore_signs_them():
    headers, body, url = record({"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG",
                                 "AWS_SESSION_TOKEN": "session-token", "AWS_REGION": "eu-west-1"})
    auth = headers["authorization"]
    assert auth.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"), auth
    assert "/eu-west-1/logs/aws4_request" in auth
    assert headers["x-amz-target"] == "Logs_20140328.DescribeLogGroups"
    assert headers["x-amz-security-token"] == "session-token"
    sent = re.search(r"Signature=([0-9a-f]{64})", auth).group(1)
    assert sent == botocore_signature(headers, body, url, "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG",
                                      "session-token", "eu-west-1")
    # The comparison can fail: another secret gives another signature.
    assert sent != botocore_signature(headers, body, url, "AKIDEXAMPLE", "other", "session-token", "eu-west-1")


def test_credentials_region_and_endpoint_come_from_profile_files(tmp_path):
    (tmp_path / "credentials").write_text("[team]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = s3cret\n")
    (tmp_path / "config").write_text("[profile team]\nregion = ap-south-1\n")
    headers, body, url = record({"AWS_PROFILE": "team", "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
                                 "AWS_CONFIG_FILE": str(tmp_path / "config"), "HOME": str(tmp_path)})
    auth = headers["authorization"]
    assert "Credential=AKIDPROFILE/" in auth and "/ap-south-1/logs/" in auth, auth
    sent = re.search(r"Signature=([0-9a-f]{64})", auth).group(1)
    assert sent == botocore_signature(headers, body, url, "AKIDPROFILE", "s3cret", None, "ap-south-1")
