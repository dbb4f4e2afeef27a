"""Runs schemathesis against a fresh `parley serve`, both inside the caller's network namespace.

    python fuzz_api.py PARLEY_BINARY ST_BINARY WORK_DIR PORT EXAMPLES

Makes an admin account (so the admin routes are fuzzed past their role check), logs in, and fuzzes
every documented operation with its session: no 5xx, every response as documented. The logout
routes and ending a session by its id are left out: they would end the session the rest of the run
uses (schemathesis reads the id from `GET /me/sessions`); so is `/session`, the
browser's cookie session, which a bearer token is not (tests/server/web_sessions.rs covers it). Exits with
schemathesis's status; on failure prints the server's errors.
"""

import json
import os
import subprocess
import sys
import time
import urllib.request

parley, st, work, port, examples = sys.argv[1:6]
base = f"http://127.0.0.1:{port}"
data = os.path.join(work, "data")
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
subprocess.run(
    [parley, "admin", "create-user", "--email", "fuzz@example.com", "--admin", "--data-dir", data],
    env={**os.environ, "PARLEY_NEW_PASSWORD": "fuzz-password-long"},
    check=True,
    stdout=subprocess.DEVNULL,
)
log = open(os.path.join(work, "serve.log"), "w")
server = subprocess.Popen(
    [parley, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data],
    stdout=log,
    stderr=subprocess.STDOUT,
)
try:
    for _ in range(200):
        try:
            urllib.request.urlopen(f"{base}/healthz", timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    else:
        sys.exit("parley serve did not answer /healthz within 20 s")
    login = urllib.request.Request(
        f"{base}/register/login",
        data=json.dumps({"email": "fuzz@example.com", "password": "fuzz-password-long"}).encode(),
        headers={"content-type": "application/json"},
    )
    token = json.load(urllib.request.urlopen(login))["token"]
    run = subprocess.run(
        [
            st, "run", f"{base}/openapi.json",
            "-H", f"Authorization: Bearer {token}",
            "--checks", "not_a_server_error,response_schema_conformance",
            "--phases", "examples,coverage,fuzzing",
            "--exclude-path", "/logout",
            "--exclude-path", "/logout/all",
            "--exclude-path", "/me/sessions/{id}",
            "--exclude-path", "/session",
            "-n", examples, "--seed", "42", "--workers", "1",
            "--request-timeout", "20", "--generation-database", "none", "--no-color",
        ],
        cwd=work,
        capture_output=True,
        text=True,
    )
    print(run.stdout[-12000:])
    print(run.stderr[-4000:], file=sys.stderr)
    if run.returncode != 0:
        with open(os.path.join(work, "serve.log")) as f:
            errors = [line for line in f if " ERROR " in line or "panicked" in line]
        print("server errors:\n" + "".join(errors[-50:]), file=sys.stderr)
    sys.exit(run.returncode)
finally:
    server.terminate()
    server.wait(timeout=20)
