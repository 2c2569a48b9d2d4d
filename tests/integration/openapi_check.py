"""Checks docs/openapi.yaml against running `sft daemon`s (run by
test_openapi.sh with /usr/bin/python3):

1. The route table in the source (every sftd_http_route(...) call under
   src/daemon, plus SFTD_WS_PATH) and the spec's paths x methods are the
   same set: no served route is undocumented and no documented one is
   missing.
2. Every documented status of every operation is produced by a crafted
   request (a status this script does not know how to craft fails the
   check, so new statuses need a recipe here). A status marked
   `x-sft-not-crafted: reason` is listed as such instead.
3. Every 2xx JSON body matches its schema, every error body is
   {"error":{"code","message"}}, and documented headers are present.

usage: openapi_check.py SPEC SRC_DIR API TOKEN LIMITED_API LIMITED_TOKEN
                        RECEIVER(HOST:PORT) FILE BODY_LIMIT
  API           daemon with the rate limit off
  LIMITED_API   daemon with rate_limit = 1 (for 429)
  FILE          a file big enough to stay in flight for a few seconds at
                bwlimit 4M
"""
import base64
import glob
import json
import os
import re
import socket
import sys
import time

import yaml

(SPEC, SRC, API, TOK, LAPI, LTOK, RECEIVER, FILE, BODY_LIMIT) = sys.argv[1:10]
BODY_LIMIT = int(BODY_LIMIT)
spec = yaml.safe_load(open(SPEC))
failures = []
UNKNOWN = "0" * 32


def fail(msg):
    failures.append(msg)
    print("FAIL:", msg, file=sys.stderr)


# ---- tiny HTTP/1.1 client: full control over headers (no automatic
#      Content-Length), one request per connection -------------------------

class Resp:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body)


def request(api, method, path, headers=None, body=b"", send_body=True,
            timeout=10):
    host, port = api.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=timeout)
    lines = ["%s %s HTTP/1.1" % (method, path), "Host: %s" % api]
    for k, v in (headers or {}).items():
        lines.append("%s: %s" % (k, v))
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode()
    if send_body:
        raw += body
    s.sendall(raw)
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            break
        buf += d
    head, _, rest = buf.partition(b"\r\n\r\n")
    hl = head.decode("latin-1").split("\r\n")
    status = int(hl[0].split()[1])
    hdrs = {}
    for h in hl[1:]:
        k, _, v = h.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    n = int(hdrs.get("content-length", "0"))
    if status != 101:
        while len(rest) < n:
            d = s.recv(65536)
            if not d:
                break
            rest += d
    s.close()
    return Resp(status, hdrs, rest[:n] if status != 101 else b"")


def auth(tok=TOK):
    return {"Authorization": "Bearer " + tok}


def jpost(api, path, obj, tok=TOK):
    b = json.dumps(obj).encode()
    h = dict(auth(tok), **{"Content-Type": "application/json",
                           "Content-Length": str(len(b))})
    return request(api, "POST", path, h, b)


def get(api, path, tok=TOK):
    return request(api, "GET", path, auth(tok))


# ---- schema check (the subset of OpenAPI the spec uses) ---------------------

def deref(o):
    while isinstance(o, dict) and "$ref" in o:
        cur = spec
        for part in o["$ref"][2:].split("/"):
            cur = cur[part]
        o = cur
    return o


def check_schema(v, sc, where):
    sc = deref(sc)
    if "allOf" in sc:
        for sub in sc["allOf"]:
            check_schema(v, sub, where)
        return
    t = sc.get("type")
    ok = {"object": isinstance(v, dict), "array": isinstance(v, list),
          "string": isinstance(v, str),
          "integer": isinstance(v, int) and not isinstance(v, bool),
          "number": isinstance(v, (int, float)) and not isinstance(v, bool),
          "boolean": isinstance(v, bool), None: True}[t]
    if v is None and sc.get("nullable"):
        return
    if not ok:
        fail("%s: %r is not %s" % (where, v, t))
        return
    if "enum" in sc and v not in sc["enum"]:
        fail("%s: %r not in %s" % (where, v, sc["enum"]))
    if "pattern" in sc and not re.search(sc["pattern"], v):
        fail("%s: %r does not match %s" % (where, v, sc["pattern"]))
    if "minimum" in sc and v < sc["minimum"]:
        fail("%s: %r < %s" % (where, v, sc["minimum"]))
    if "maximum" in sc and v > sc["maximum"]:
        fail("%s: %r > %s" % (where, v, sc["maximum"]))
    if t == "object":
        props = sc.get("properties", {})
        for r in sc.get("required", []):
            if r not in v:
                fail("%s: missing required '%s'" % (where, r))
        for k, x in v.items():
            if k in props:
                check_schema(x, props[k], where + "." + k)
            elif sc.get("additionalProperties") is False:
                fail("%s: undocumented property '%s'" % (where, k))
    if t == "array" and "items" in sc:
        for i, x in enumerate(v):
            check_schema(x, sc["items"], "%s[%d]" % (where, i))


def all_props(sc):
    """Property names of a schema including allOf parts."""
    sc = deref(sc)
    out = set(sc.get("properties", {}))
    for sub in sc.get("allOf", []):
        out |= all_props(sub)
    return out


def check_strict(v, sc, where):
    """For allOf objects: no property outside the union of the parts."""
    extra = set(v) - all_props(sc) if isinstance(v, dict) else set()
    if extra:
        fail("%s: undocumented properties %s" % (where, sorted(extra)))


# ---- 1. route table in the source vs the spec --------------------------------

METHODS = {"SFTD_HTTP_GET": "get", "SFTD_HTTP_POST": "post",
           "SFTD_HTTP_PUT": "put", "SFTD_HTTP_DELETE": "delete",
           "SFTD_HTTP_PATCH": "patch"}
served = set()
route_re = re.compile(r'sftd_http_route\(\s*[^,]+,\s*([A-Z_|\s]+?),\s*"([^"]+)"')
for f in glob.glob(os.path.join(SRC, "src/daemon/**/*.c"), recursive=True):
    txt = open(f, encoding="utf-8", errors="replace").read()
    for m in route_re.finditer(txt):
        for name in re.split(r"\s*\|\s*", m.group(1).strip()):
            served.add((METHODS[name], m.group(2)))
hdr = open(os.path.join(SRC, "src/daemon/api/http.h")).read()
ws_path = re.search(r'#define SFTD_WS_PATH "([^"]+)"', hdr).group(1)
served.add(("get", ws_path))
if len(served) < 5:
    fail("the route grep found only %s: has the registration changed?" % served)
documented = set()
for path, item in spec["paths"].items():
    for m in item:
        if m in ("get", "post", "put", "delete", "patch"):
            documented.add((m, path))
for m, p in sorted(served - documented):
    fail("served but not in the spec: %s %s" % (m.upper(), p))
for m, p in sorted(documented - served):
    fail("in the spec but not registered in the source: %s %s" % (m.upper(), p))
print("route table: %d routes served, %d documented" % (len(served), len(documented)))

# ---- 2. fixtures: one live transfer to act on --------------------------------

def wait_state(tid, pred, what, secs=30):
    deadline = time.time() + secs
    while time.time() < deadline:
        r = get(API, "/api/transfer/%s/progress" % tid)
        if r.status == 200 and pred(r.json()["state"]):
            return r.json()["state"]
        time.sleep(0.05)
    fail("transfer %s never became %s" % (tid, what))
    return None


TERMINAL = ("Completed", "Failed")
send_body = {"paths": [FILE], "peer": RECEIVER, "bwlimit": "4M"}


def err_ok(r, where, status):
    try:
        check_schema(r.json(), {"$ref": "#/components/schemas/Error"}, where)
    except ValueError:
        fail("%s: %d error body is not JSON: %r" % (where, status, r.body[:100]))


# ---- recipes: (method, path, status) -> a Resp ------------------------------

state = {}


def tid():
    return state["live"]


def concrete(path, ident):
    return path.replace("{id}", ident)


def recipe(method, path, status, op):
    """Crafts a request that should answer |status|. Returns Resp or None
    (no recipe)."""
    ident = state.get("live", UNKNOWN)
    p = concrete(path, ident)
    M = method.upper()
    if op.get("x-websocket"):
        return ws_recipe(p, status)
    if status == 200 and path == "/api/transfer/send":
        return jpost(API, p, send_body)  # same paths+peer: the duplicate
    if status == 202:
        return None  # done in the ordered sequence below
    if status == 200 and M == "POST":
        return None  # pause/resume/cancel: ordered sequence below
    if status == 200:
        return get(API, p)
    if status == 400:
        if M == "POST":
            b = b"{bad json"
            return request(API, M, p, dict(auth(), **{
                "Content-Type": "application/json",
                "Content-Length": str(len(b))}), b)
        return request(API, M, p, dict(auth(), **{"Content-Length": "12x"}))
    if status == 401:
        r = request(API, M, p, {"Content-Length": "0"} if M == "POST" else {})
        r2 = request(API, M, p, dict(auth("wrong" * 13), **(
            {"Content-Length": "0"} if M == "POST" else {})))
        if r2.status != 401:
            fail("%s %s with a wrong token: %d" % (M, path, r2.status))
        return r
    if status == 403:  # a foreign Origin, with a valid token
        return request(API, M, p, dict(auth(), **dict(
            {"Origin": "http://evil.example"},
            **({"Content-Length": "0"} if M == "POST" else {}))))
    if status == 404:
        return request(API, M, concrete(path, UNKNOWN), dict(
            auth(), **({"Content-Length": "0"} if M == "POST" else {})))
    if status == 405:
        return request(API, "DELETE", p, auth())
    if status == 409:
        return request(API, M, concrete(path, state["over"]),
                       dict(auth(), **{"Content-Length": "0"}))
    if status == 411:
        return request(API, M, p, auth())
    if status == 413:
        return request(API, M, p, dict(auth(), **{
            "Content-Type": "application/json",
            "Content-Length": str(BODY_LIMIT + 1)}), send_body=False)
    if status == 415:
        return request(API, M, p, dict(auth(), **{
            "Content-Type": "text/plain", "Content-Length": "2"}), b"{}")
    if status == 429:
        h = dict(auth(LTOK), **({"Content-Length": "0"} if M == "POST" else {}))
        r = None
        for _ in range(6):  # rate 1/s, burst 2
            r = request(LAPI, M, p, h)
            if r.status == 429:
                break
        return r
    if status == 500 and path == "/api/transfer/send":
        return jpost(API, p, {"paths": [FILE], "peer": "255.255.255.255:5000"})
    return None


WS_KEY = base64.b64encode(os.urandom(16)).decode()


def ws_headers(extra=None, tok=TOK):
    h = {"Connection": "Upgrade", "Upgrade": "websocket",
         "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": WS_KEY}
    if tok:
        h.update(auth(tok))
    h.update(extra or {})
    return h


def ws_recipe(p, status):
    if status == 101:
        return request(API, "GET", p, ws_headers())
    if status == 400:
        return request(API, "GET", p, ws_headers(
            {"Sec-WebSocket-Protocol": "not-sft"}))
    if status == 401:
        return request(API, "GET", p, ws_headers(tok=None))
    if status == 403:
        return request(API, "GET", p, ws_headers(
            {"Origin": "http://evil.example"}))
    if status == 429:
        r = None
        for _ in range(6):
            r = request(LAPI, "GET", p, ws_headers(tok=LTOK))
            if r.status == 429:
                break
        return r
    if status == 503:
        # hold ws_max_clients (256) upgraded connections, then one more
        host, port = API.rsplit(":", 1)
        held = []
        req = ("GET %s HTTP/1.1\r\nHost: %s\r\n" % (p, API) + "".join(
            "%s: %s\r\n" % kv for kv in ws_headers().items()) + "\r\n").encode()
        r = None
        try:
            for _ in range(300):
                s = socket.create_connection((host, int(port)), timeout=10)
                s.sendall(req)
                buf = b""
                while b"\r\n\r\n" not in buf:
                    d = s.recv(4096)
                    if not d:
                        break
                    buf += d
                code = int(buf.split(b" ", 2)[1]) if buf else 0
                if code != 101:
                    s.close()
                    body = buf.partition(b"\r\n\r\n")[2]
                    r = Resp(code, {}, body)
                    break
                held.append(s)
        finally:
            for s in held:
                s.close()
        if r and r.status == 503 and len(held) != 256:
            fail("/ws: 503 after %d clients, documented 256" % len(held))
        return r
    return None


def check(method, path, status, r, resp_spec):
    where = "%s %s -> %s" % (method.upper(), path, status)
    if r is None:
        fail("%s: got no answer" % where)
        return
    if r.status != int(status):
        fail("%s: got %d %r" % (where, r.status, r.body[:200]))
        return
    resp_spec = deref(resp_spec)
    for h in resp_spec.get("headers", {}):
        if h.lower() not in r.headers:
            fail("%s: header %s missing" % (where, h))
    content = resp_spec.get("content", {})
    if int(status) >= 400:
        err_ok(r, where, int(status))
    elif content:
        ctype = list(content)[0]
        got = r.headers.get("content-type", "")
        if got.split(";")[0] != ctype.split(";")[0]:
            fail("%s: content-type %s, documented %s" % (where, got, ctype))
        if ctype == "application/json":
            v = r.json()
            sc = content[ctype]["schema"]
            check_schema(v, sc, where)
            check_strict(v, sc, where)
    print("ok %s" % where)


# ---- 3. run every documented status ------------------------------------------

ops = []
for path, item in spec["paths"].items():
    for m, op in item.items():
        if m in ("get", "post", "put", "delete", "patch"):
            ops.append((m, path, op))

# Ordered part: start a slow transfer (202), act on it (200s), end it.
r = jpost(API, "/api/transfer/send", send_body)
check("post", "/api/transfer/send", "202", r,
      spec["paths"]["/api/transfer/send"]["post"]["responses"]["202"])
if r.status != 202:
    print("\n".join(failures), file=sys.stderr)
    sys.exit(1)
state["live"] = r.json()["id"]
wait_state(tid(), lambda s: s == "Transferring", "Transferring")
for action in ("pause", "resume", "cancel"):
    p = "/api/transfer/{id}/" + action
    r = request(API, "POST", concrete(p, tid()), dict(auth(), **{"Content-Length": "0"}))
    check("post", p, "200", r, spec["paths"][p]["post"]["responses"]["200"])
    if action == "pause":
        st = get(API, "/api/transfer/%s" % tid()).json()["state"]
        if st != "Paused":
            fail("after pause the state is %s" % st)
wait_state(tid(), lambda s: s in TERMINAL, "Failed (cancelled)")
state["over"] = tid()
# a new live transfer for the GET routes (the duplicate recipe needs one)
r = jpost(API, "/api/transfer/send", send_body)
if r.status != 202:
    fail("second transfer: %d %r" % (r.status, r.body))
else:
    state["live"] = r.json()["id"]

not_crafted = []
for m, path, op in ops:
    for status, rs in op["responses"].items():
        if status == "202" or (status == "200" and m == "post" and path != "/api/transfer/send"):
            continue  # checked above
        if deref(rs).get("x-sft-not-crafted"):
            not_crafted.append("%s %s %s (%s)" % (m.upper(), path, status,
                                                 deref(rs)["x-sft-not-crafted"]))
            continue
        r = recipe(m, path, int(status), op)
        if r is None and not (status == "200" and m == "post"):
            fail("%s %s %s: documented, but no recipe crafts it" % (m.upper(), path, status))
            continue
        check(m, path, status, r, rs)
        if status == "200" and path == "/api/transfer/send" and r and r.status == 200:
            if not r.json().get("duplicate") or r.json()["id"] != state["live"]:
                fail("duplicate send did not return the running transfer")

# every served route answers its documented method with neither 404 nor 405
for m, path in sorted(served):
    if path == ws_path:
        continue
    p = concrete(path, state["live"])
    h = dict(auth(), **({"Content-Length": "0"} if m == "post" else {}))
    r = request(API, m.upper(), p, h)
    if r.status in (404, 405):
        fail("%s %s answered %d" % (m.upper(), p, r.status))

request(API, "POST", concrete("/api/transfer/{id}/cancel", state["live"]),
        dict(auth(), **{"Content-Length": "0"}))
for nc in not_crafted:
    print("not crafted:", nc)
if failures:
    print("%d failure(s)" % len(failures), file=sys.stderr)
    sys.exit(1)
print("openapi ok: %d operations, every documented status reached" % len(ops))
