#!/usr/bin/env python3
"""The OpenAPI document (docs/openapi.json) against a running server. TAP.

The server serves the document it was built with; every operation in it is called with valid
input (and, where it takes any, invalid input), and each answer's status must be documented and its
JSON must match the documented schema; every route the server prints (`gpool server --routes`) is
documented and the other way round, and methods the document does not name answer 404.

usage: openapi_check.py GPOOL DOCS_OPENAPI_JSON
"""
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

GPOOL, DOC_FILE = sys.argv[1], sys.argv[2]
n = failed = 0


def ok(cond, desc):
    global n, failed
    n += 1
    if not cond:
        failed += 1
    print("%s %d - %s" % ("ok" if cond else "not ok", n, desc), flush=True)


# ---- a validator for the subset of JSON Schema the document uses -------------------------------

def validate(doc, schema, v, where="$"):
    """Problems with v against schema, as a list of strings."""
    if "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].split("/")[-1]]
    if v is None:
        return [] if schema.get("nullable") else ["%s: null where it may not be" % where]
    kinds = {"object": dict, "array": list, "string": str, "boolean": bool}
    t = schema.get("type")
    if t in kinds and not isinstance(v, kinds[t]):
        return ["%s: %r is not %s" % (where, v, t)]
    if t == "integer" and (isinstance(v, bool) or not isinstance(v, int)):
        return ["%s: %r is not an integer" % (where, v)]
    if t == "number" and (isinstance(v, bool) or not isinstance(v, (int, float))):
        return ["%s: %r is not a number" % (where, v)]
    if "enum" in schema and v not in schema["enum"]:
        return ["%s: %r is not one of %s" % (where, v, schema["enum"])]
    problems = []
    if t == "object":
        props = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in v:
                problems.append("%s: %s is missing" % (where, key))
        extra = schema.get("additionalProperties", True)
        for key, val in v.items():
            if key in props:
                problems += validate(doc, props[key], val, where + "." + key)
            elif extra is False:
                problems.append("%s: %s is not documented" % (where, key))
            elif isinstance(extra, dict):
                problems += validate(doc, extra, val, where + "." + key)
    if t == "array":
        for i, item in enumerate(v):
            problems += validate(doc, schema["items"], item, "%s[%d]" % (where, i))
    return problems


# ---- a server --------------------------------------------------------------------------------

tmp = tempfile.mkdtemp()
s = socket.socket()
s.bind(("127.0.0.1", 0))
port = s.getsockname()[1]
s.close()
base = "http://127.0.0.1:%d" % port
store = "sqlite:%s/gpool.db" % tmp
env = dict(os.environ, HOME=tmp)
admin = subprocess.check_output([GPOOL, "server", "init", "--store", store, "--admin", "ana",
                                 "--unix-user", "nobody"], env=env, text=True).strip()
server = subprocess.Popen([GPOOL, "server", "--listen", "127.0.0.1:%d" % port, "--store", store],
                          stderr=open(os.path.join(tmp, "server.log"), "w"), env=env)


def request(method, path, body=None, token=None, ctype="application/json", cookie=None,
            stream=False):
    """(status, content type, body bytes, headers); the body is not read for a stream."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    if cookie:
        req.add_header("Cookie", cookie)
    if data is not None:
        req.add_header("Content-Type", ctype)
    try:
        resp = urllib.request.urlopen(req, timeout=10)
    except urllib.error.HTTPError as e:
        resp = e
    ct = resp.headers.get("Content-Type", "")
    content = b"" if stream else resp.read()
    resp.close()
    return resp.status, ct, content, resp.headers


for _ in range(100):
    try:
        request("GET", "/api/v1/openapi.json")
        break
    except OSError:
        time.sleep(0.1)


def must(method, path, body=None, token=admin, want=None):
    status, _, content, _ = request(method, path, body, token)
    assert want is None or status == want, (method, path, status, content)
    return json.loads(content) if content else None


# ---- the document ----------------------------------------------------------------------------

status, ct, content, _ = request("GET", "/api/v1/openapi.json")
doc = json.loads(content)
ok(status == 200 and ct == "application/json", "the server serves its OpenAPI document without a token")
ok(doc == json.load(open(DOC_FILE)), "it is docs/openapi.json as committed")
ok(doc.get("openapi", "").startswith("3."), "an OpenAPI 3 document")
METHODS = ("get", "put", "post", "delete", "patch")
documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops if m in METHODS}
printed = set(tuple(line.split(" ", 1)) for line in
              subprocess.check_output([GPOOL, "server", "--routes"], text=True).splitlines())
ok(documented == printed, "every route the server has is documented, and only those "
   "(undocumented: %s; not served: %s)" % (sorted(printed - documented), sorted(documented - printed)))
bad_refs = [r for r in re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(doc))
            if r not in doc["components"]["schemas"]]
ok(not bad_refs, "every schema referred to exists (%s)" % bad_refs)

# ---- fixtures --------------------------------------------------------------------------------

must("PUT", "/api/v1/projects/p", {"deserved_gpus": 4}, want=200)
must("POST", "/api/v1/users", {"name": "dora", "unix_user": "nobody"}, want=201)
must("POST", "/api/v1/users", {"name": "agent1", "unix_user": "root", "role": "agent"}, want=201)
agent = must("POST", "/api/v1/users/agent1/tokens", want=201)["token"]
must("POST", "/api/v1/agent/register", {"name": "n1", "cpu_milli": 64000, "mem_mib": 65536, "gpus": [
    {"uuid": "GPU-%d" % i, "model": "H100", "memory_bytes": 80 << 30} for i in range(4)]},
     token=agent, want=200)
join_token = must("POST", "/api/v1/join-tokens", None, want=201)["token"]
to_revoke = must("POST", "/api/v1/join-tokens", {"expires_in_seconds": 0}, want=201)["id"]
must("POST", "/api/v1/agent/join", {"name": "j1"}, token=join_token, want=201)
jobs = [must("POST", "/api/v1/jobs", {"project": "p", "command": ["x"], "gpus": 1}, want=201)["id"]
        for _ in range(4)]
running, to_cancel, to_delete, assigned = jobs
for _ in range(100):
    if all(must("GET", "/api/v1/jobs/%d" % j)["state"] == "assigned" for j in jobs):
        break
    time.sleep(0.1)
must("POST", "/api/v1/agent/status", {"node": "n1", "job": running, "state": "running"}, agent, 200)

# ---- every operation, with valid input ----------------------------------------------------------

# (method, path template, path, body, token, expected status); the body's type follows the
# document's request content type.
valid = [
    ("GET", "/metrics", "/metrics", None, admin, 200),
    ("GET", "/api/v1/openapi.json", "/api/v1/openapi.json", None, None, 200),
    ("POST", "/api/v1/jobs", "/api/v1/jobs", {"project": "p", "command": ["sleep", "1"], "gpu": 0.5, "walltime_seconds": 60, "retries": 1}, admin, 201),
    ("GET", "/api/v1/jobs", "/api/v1/jobs?state=assigned,running&since=1&limit=10", None, admin, 200),
    ("GET", "/api/v1/jobs/{id}", "/api/v1/jobs/%d" % running, None, admin, 200),
    ("GET", "/api/v1/jobs/{id}/logs", "/api/v1/jobs/%d/logs?stream=stdout&offset=0" % running, None, admin, 200),
    ("POST", "/api/v1/jobs/{id}/swap", "/api/v1/jobs/%d/swap" % running, {"to": "out"}, admin, 200),
    ("POST", "/api/v1/jobs/{id}/suspend", "/api/v1/jobs/%d/suspend" % running, None, admin, 200),
    ("POST", "/api/v1/jobs/{id}/resume", "/api/v1/jobs/%d/resume" % running, None, admin, 200),
    ("POST", "/api/v1/jobs/{id}/cancel", "/api/v1/jobs/%d/cancel" % to_cancel, None, admin, 200),
    ("DELETE", "/api/v1/jobs/{id}", "/api/v1/jobs/%d" % to_delete, None, admin, 200),
    ("GET", "/api/v1/jobs/{id}/timeline", "/api/v1/jobs/%d/timeline" % running, None, admin, 200),
    ("GET", "/api/v1/shares", "/api/v1/shares", None, admin, 200),
    ("GET", "/api/v1/utilization", "/api/v1/utilization?hours=1", None, admin, 200),
    ("GET", "/api/v1/usage", "/api/v1/usage?by=user&since=0", None, admin, 200),
    ("GET", "/api/v1/projects", "/api/v1/projects", None, admin, 200),
    ("PUT", "/api/v1/projects/{name}", "/api/v1/projects/q", {"deserved_gpus": 1, "limit_gpus": 2, "weight": 1, "parent": "p"}, admin, 200),
    ("POST", "/api/v1/projects/{name}/members", "/api/v1/projects/p/members", {"user": "dora"}, admin, 200),
    ("POST", "/api/v1/users", "/api/v1/users", {"name": "eve", "unix_user": "nobody", "role": "user"}, admin, 201),
    ("POST", "/api/v1/users/{name}/tokens", "/api/v1/users/eve/tokens", None, admin, 201),
    ("POST", "/api/v1/tokens", "/api/v1/tokens", None, admin, 201),
    ("POST", "/api/v1/session", "/api/v1/session", None, admin, 201),
    ("DELETE", "/api/v1/session", "/api/v1/session", None, None, 200),
    ("GET", "/api/v1/events", "/api/v1/events", None, admin, 200),
    ("GET", "/api/v1/status", "/api/v1/status", None, admin, 200),
    ("GET", "/api/v1/nodes", "/api/v1/nodes", None, admin, 200),
    ("POST", "/api/v1/nodes/{name}/cordon", "/api/v1/nodes/n1/cordon", None, admin, 200),
    ("POST", "/api/v1/nodes/{name}/drain", "/api/v1/nodes/n1/drain", None, admin, 200),
    ("POST", "/api/v1/nodes/{name}/uncordon", "/api/v1/nodes/n1/uncordon", None, admin, 200),
    ("POST", "/api/v1/nodes/{name}/revoke", "/api/v1/nodes/j1/revoke", None, admin, 200),
    ("GET", "/api/v1/join-tokens", "/api/v1/join-tokens", None, admin, 200),
    ("POST", "/api/v1/join-tokens", "/api/v1/join-tokens", {"expires_in_seconds": 3600}, admin, 201),
    ("DELETE", "/api/v1/join-tokens/{id}", "/api/v1/join-tokens/%d" % to_revoke, None, admin, 200),
    ("POST", "/api/v1/agent/join", "/api/v1/agent/join", {"name": "j2"}, join_token, 201),
    ("POST", "/api/v1/agent/register", "/api/v1/agent/register", {"name": "n2", "cpu_milli": 1000, "mem_mib": 1024, "gpus": []}, agent, 200),
    ("POST", "/api/v1/agent/heartbeat", "/api/v1/agent/heartbeat", {"name": "n1", "gpus": [{"index": 0, "memory_used_bytes": 1, "utilization_pct": 50}]}, agent, 200),
    ("POST", "/api/v1/agent/status", "/api/v1/agent/status", {"node": "n1", "job": assigned, "state": "running"}, agent, 200),
    ("POST", "/api/v1/agent/logs", "/api/v1/agent/logs?node=n1&job=%d&stream=stdout&offset=0" % running, b"hello\n", agent, 200),
    ("GET", "/api/v1/agent/assignments", "/api/v1/agent/assignments?node=n1", None, agent, 200),
]
# Each operation's invalid input: (path, body), answered with a documented 4xx and the error shape.
invalid = {
    ("GET", "/api/v1/jobs"): ("/api/v1/jobs?state=running,asleep", None),
    ("POST", "/api/v1/jobs"): ("/api/v1/jobs", {"project": "p", "command": ["x"], "retries": "twice"}),
    ("GET", "/api/v1/jobs/{id}"): ("/api/v1/jobs/999999", None),
    ("GET", "/api/v1/jobs/{id}/logs"): ("/api/v1/jobs/%d/logs?stream=stdin" % running, None),
    ("POST", "/api/v1/jobs/{id}/swap"): ("/api/v1/jobs/%d/swap" % running, {"to": "sideways"}),
    ("POST", "/api/v1/jobs/{id}/cancel"): ("/api/v1/jobs/%d/cancel" % to_cancel, None),
    ("POST", "/api/v1/jobs/{id}/suspend"): ("/api/v1/jobs/%d/suspend" % to_cancel, None),
    ("POST", "/api/v1/jobs/{id}/resume"): ("/api/v1/jobs/%d/resume" % running, None),
    ("DELETE", "/api/v1/jobs/{id}"): ("/api/v1/jobs/999999", None),
    ("GET", "/api/v1/usage"): ("/api/v1/usage?until=soon", None),
    ("GET", "/api/v1/jobs/{id}/timeline"): ("/api/v1/jobs/999999/timeline", None),
    ("GET", "/api/v1/utilization"): ("/api/v1/utilization?hours=7", None),
    ("PUT", "/api/v1/projects/{name}"): ("/api/v1/projects/q", {"deserved_gpus": "four"}),
    ("POST", "/api/v1/projects/{name}/members"): ("/api/v1/projects/p/members", {"member": "dora"}),
    ("POST", "/api/v1/users"): ("/api/v1/users", {"name": "zed"}),
    ("POST", "/api/v1/users/{name}/tokens"): ("/api/v1/users/nobody-here/tokens", None),
    ("DELETE", "/api/v1/session"): ("/api/v1/session", None),
    ("POST", "/api/v1/nodes/{name}/cordon"): ("/api/v1/nodes/n9/cordon", None),
    ("POST", "/api/v1/nodes/{name}/drain"): ("/api/v1/nodes/n9/drain", None),
    ("POST", "/api/v1/nodes/{name}/uncordon"): ("/api/v1/nodes/n9/uncordon", None),
    ("POST", "/api/v1/nodes/{name}/revoke"): ("/api/v1/nodes/n9/revoke", None),
    ("POST", "/api/v1/join-tokens"): ("/api/v1/join-tokens", {"expires_in_seconds": -1}),
    ("DELETE", "/api/v1/join-tokens/{id}"): ("/api/v1/join-tokens/999999", None),
    ("POST", "/api/v1/agent/join"): ("/api/v1/agent/join", {"name": "a b"}),
    ("POST", "/api/v1/agent/register"): ("/api/v1/agent/register", {"name": "n3", "cpu_milli": 0, "mem_mib": 1, "gpus": []}),
    ("POST", "/api/v1/agent/heartbeat"): ("/api/v1/agent/heartbeat", {"name": "n1", "gpus": [{"index": 99}]}),
    ("POST", "/api/v1/agent/status"): ("/api/v1/agent/status", {"node": "n1", "job": assigned, "state": "exploded"}),
    ("POST", "/api/v1/agent/logs"): ("/api/v1/agent/logs?node=n1&job=%d&stream=stdout" % running, b"x"),
    ("GET", "/api/v1/agent/assignments"): ("/api/v1/agent/assignments?node=n1&wait=9999", None),
}
tested = {(m, t) for m, t, *_ in valid}
ok(tested == documented, "every documented operation is exercised here (missing: %s)" % sorted(documented - tested))


def check_answer(op, method, template, status, ct, content, desc):
    responses = op["responses"]
    spec = responses.get(str(status))
    if spec is None:
        ok(False, "%s: HTTP %d is documented for %s %s (%s)" % (desc, status, method, template, content[:200]))
        return
    media = spec.get("content", {})
    kind = ct.split(";")[0].strip()
    if kind not in media:
        ok(False, "%s: %s %s answers %s, documented %s" % (desc, method, template, kind, list(media)))
        return
    if kind != "application/json":
        ok(True, "%s: %s %s -> %d %s" % (desc, method, template, status, kind))
        return
    problems = validate(doc, media[kind]["schema"], json.loads(content))
    ok(not problems, "%s: %s %s -> %d matches its schema %s" % (desc, method, template, status, problems[:3]))


cookie = None
for method, template, path, body, token, want in valid:
    op = doc["paths"][template][method.lower()]
    binary = "application/octet-stream" in op.get("requestBody", {}).get("content", {})
    status, ct, content, headers = request(
        method, path, body, token, "application/octet-stream" if binary else "application/json",
        cookie if template == "/api/v1/session" and method == "DELETE" else None,
        stream=template == "/api/v1/events")
    if template == "/api/v1/session" and method == "POST":
        cookie = headers.get("Set-Cookie", "").split(";")[0]
    if status != want:
        ok(False, "valid input: %s %s -> %d, expected %d (%s)" % (method, path, status, want, content[:200]))
        continue
    check_answer(op, method, template, status, ct, content, "valid input")
    if (method, template) in invalid:
        bad_path, bad_body = invalid[(method, template)]
        status, ct, content, _ = request(method, bad_path, bad_body, token,
                                         "application/octet-stream" if binary else "application/json")
        ok(400 <= status < 500, "invalid input: %s %s -> %d is a 4xx" % (method, bad_path, status))
        check_answer(op, method, template, status, ct, content, "invalid input")
    if token is not None and template != "/metrics":
        status, ct, content, _ = request(method, path, body if not binary else b"", "gp_not_a_token")
        check_answer(op, method, template, status, ct, content, "a bad token")

# ---- methods the document does not name answer 404 --------------------------------------------

fill = {"{id}": str(running), "{name}": "n1"}
stray = []
for template, ops in doc["paths"].items():
    path = template
    for k, v in fill.items():
        path = path.replace(k, v)
    if template.startswith("/api/v1/projects/"):
        path = path.replace("/n1", "/p")
    for method in METHODS:
        if method in ops:
            continue
        token = agent if template.startswith("/api/v1/agent/") else admin
        status, ct, content, _ = request(method.upper(), path, b"{}", token)
        if status != 404 or validate(doc, {"$ref": "#/components/schemas/Error"}, json.loads(content)):
            stray.append("%s %s -> %d" % (method.upper(), path, status))
ok(not stray, "methods not documented are 404 with the error shape (%s)" % stray[:5])

server.terminate()
server.wait()
if failed:
    sys.stderr.write(open(os.path.join(tmp, "server.log")).read())
subprocess.call(["rm", "-rf", tmp])
print("1..%d" % n)
sys.exit(1 if failed else 0)
