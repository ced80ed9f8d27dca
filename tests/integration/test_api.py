"""test_api.py -- the local HTTP API (SPEC 5) against a real wspd.

Every endpoint and every error the API promises: auth (bearer and the board's
session cookie), the Host check, validation that changes nothing, 404/405/
410/413, SSE, metrics, the peer endpoints (list, connect, drop and the sync
status, with a second daemon of the same project to connect to), and a clean
shutdown with streams and keep-alive connections open. Waits are
event-driven (socket reads or polling with deadlines); no fixed sleeps.
"""

import http.client
import json
import os
import re
import signal
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wsphelper import Daemon, Workspace, run_wsp, wait_until  # noqa: E402

PEER_STATES = {"connecting", "connected", "retrying"}
PEER_VIAS = {"member", "listener", "relay", None}
UNKNOWN_PEER = "0123456789abcdef"


def error_of(body):
    """The (code, message) of an API error body; fails on another shape."""
    assert isinstance(body, dict) and isinstance(body.get("error"), dict), body
    return body["error"]["code"], body["error"]["message"]


def check_peer(test, p):
    """A peer object has exactly the shape wsp-http.h documents."""
    test.assertIsInstance(p, dict)
    test.assertRegex(p["peer_id"], r"^[0-9a-f]{16}$")
    test.assertIn(p["state"], PEER_STATES)
    test.assertIn(p["via"], PEER_VIAS)
    for key in ("address", "url", "last_seen", "connected_at", "last_error"):
        test.assertIn(key, p)
        test.assertTrue(p[key] is None or isinstance(p[key], str), (key, p))
    for key in ("ops_they_lack", "ops_we_lack", "bytes_sent", "bytes_received"):
        test.assertIsInstance(p[key], int, (key, p))
        test.assertGreaterEqual(p[key], 0, (key, p))


class SseStream:
    """A raw /api/v1/events subscription read with a deadline."""

    def __init__(self, port, token, timeout=10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.sendall((f"GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                           f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n").encode())
        self.buf = b""
        head = self._read_until(b"\r\n\r\n")
        self.status = int(head.split(b" ", 2)[1])
        self.headers = head.decode("latin-1").lower()

    def _read_until(self, marker):
        while marker not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("stream closed")
            self.buf += chunk
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def next_event(self, deadline):
        """The next `event: ops` payload (dict); skips comments. Chunked
        framing is stripped by looking only at SSE lines."""
        text = b""
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            text += self._read_until(b"\n\n")
            lines = [ln for ln in text.decode("utf-8").split("\n")]
            if "event: ops" in lines:
                i = lines.index("event: ops")
                for ln in lines[i + 1:]:
                    if ln.startswith("data: "):
                        return json.loads(ln[len("data: "):])
        raise AssertionError("no SSE event before the deadline")

    def wait_closed(self, timeout):
        self.sock.settimeout(timeout)
        try:
            while self.sock.recv(65536):
                pass
        except (ConnectionResetError, socket.timeout):
            pass

    def close(self):
        self.sock.close()


class ApiTest(unittest.TestCase):
    d = None

    @classmethod
    def setUpClass(cls):
        cls.d = Daemon().start()

    @classmethod
    def tearDownClass(cls):
        if cls.d is not None:
            code = cls.d.stop()
            cls.d.workspace.cleanup()
            assert code == 0, f"wspd exited with {code}:\n{cls.d.log()}"

    # -- helpers -------------------------------------------------------------

    def req(self, method, path, body=None, **kw):
        return self.d.request(method, path, body, **kw)

    def create(self, **fields):
        fields.setdefault("title", "a task")
        status, headers, task = self.req("POST", "/api/v1/tasks", fields)
        self.assertEqual(status, 201, task)
        return task

    def count_tasks(self):
        status, _, body = self.req("GET", "/api/v1/tasks?limit=1000")
        self.assertEqual(status, 200, body)
        return len(body["tasks"])

    def assert_error(self, resp, status, code, mentions=None):
        st, headers, body = resp
        self.assertEqual(st, status, body)
        self.assertIn("json", headers.get("content-type", ""))
        c, msg = error_of(body)
        self.assertEqual(c, code, body)
        if mentions:
            self.assertIn(mentions, msg, body)
        return headers, body

    # -- health, auth, Host ----------------------------------------------------

    def test_health_needs_no_token(self):
        status, _, body = self.req("GET", "/api/v1/health", token=False)
        self.assertEqual(status, 200)
        self.assertEqual(body["status"], "ok")
        self.assertEqual(body["peer_id"], self.d.peer_id)
        self.assertIsInstance(body["version"], str)

    def test_api_without_token_is_401(self):
        headers, _ = self.assert_error(self.req("GET", "/api/v1/tasks", token=False), 401, "unauthorized")
        self.assertIn("bearer", headers.get("www-authenticate", "").lower())
        self.assert_error(self.req("POST", "/api/v1/tasks", {"title": "x"}, token=False), 401, "unauthorized")
        self.assert_error(self.req("GET", "/api/v1/nothing", token=False), 401, "unauthorized")

    def test_api_with_wrong_token_is_401(self):
        for value in ("Bearer wrong", "Bearer " + self.d.token + "x", "Basic " + self.d.token, self.d.token):
            self.assert_error(self.req("GET", "/api/v1/tasks", token=False,
                                       headers={"Authorization": value}), 401, "unauthorized")

    def test_unknown_session_cookie_is_401(self):
        self.assert_error(self.req("GET", "/api/v1/tasks", token=False,
                                   headers={"Cookie": "wsp_session=" + "0" * 64}), 401, "unauthorized")

    def test_non_loopback_host_is_403(self):
        for host in ("evil.example", "evil.example:%d" % self.d.port, "127.0.0.1.evil.example",
                     "localhost.evil.example", "10.0.0.1"):
            self.assert_error(self.req("GET", "/api/v1/health", headers={"Host": host}), 403, "forbidden")
            self.assert_error(self.req("GET", "/api/v1/tasks", headers={"Host": host}), 403, "forbidden")

    def test_loopback_hosts_are_accepted(self):
        for host in ("localhost", "localhost:%d" % self.d.port, "127.0.0.1", "[::1]:%d" % self.d.port,
                     "LOCALHOST"):
            status, _, _ = self.req("GET", "/api/v1/tasks", headers={"Host": host})
            self.assertEqual(status, 200, host)

    # -- create ------------------------------------------------------------------

    def test_create_returns_201_location_and_task(self):
        status, headers, task = self.req("POST", "/api/v1/tasks", {
            "title": "Make sync resume", "body": "after sleep", "status": "in_progress", "priority": 1,
            "assignee": "alice", "labels": [" sync ", "bug", "sync"], "due": "2026-12-01", "position": 2.5})
        self.assertEqual(status, 201, task)
        self.assertEqual(headers["location"], "/api/v1/tasks/" + task["id"])
        self.assertRegex(task["id"], r"^ws-[a-z2-7]{10}$")
        self.assertEqual(task["title"], "Make sync resume")
        self.assertEqual(task["body"], "after sleep")
        self.assertEqual(task["status"], "in_progress")
        self.assertEqual(task["priority"], 1)
        self.assertEqual(task["assignee"], "alice")
        self.assertEqual(task["labels"], ["bug", "sync"])
        self.assertEqual(task["due"], "2026-12-01")
        self.assertEqual(task["position"], 2.5)
        self.assertEqual(task["created_by"], self.d.peer_id)
        status, _, again = self.req("GET", headers["location"])
        self.assertEqual(status, 200)
        self.assertEqual(again["id"], task["id"])
        self.assertEqual(again["comments"], [])
        self.assertEqual(again["conflicts"], [])

    def test_create_defaults(self):
        task = self.create(title="defaults")
        self.assertEqual(task["body"], "")
        self.assertEqual(task["status"], "todo")
        self.assertEqual(task["priority"], 2)
        self.assertIsNone(task["assignee"])
        self.assertIsNone(task["parent"])
        self.assertIsNone(task["due"])
        self.assertEqual(task["position"], 0)
        self.assertEqual(task["labels"], [])
        self.assertEqual(task["depends_on"], [])

    def test_create_with_dependency_and_parent(self):
        a = self.create(title="first")
        b = self.create(title="second", depends_on=[a["id"]], parent=a["id"])
        self.assertEqual(b["depends_on"], [a["id"]])
        self.assertEqual(b["parent"], a["id"])

    def test_create_rejections_change_nothing(self):
        before = self.count_tasks()
        cases = [
            ({}, "title"),
            ({"title": 5}, "title"),
            ({"title": None}, "title"),
            ({"title": "x", "body": 3}, "body"),
            ({"title": "x", "status": "nope"}, "status"),
            ({"title": "x", "status": 1}, "status"),
            ({"title": "x", "priority": 5}, "priority"),
            ({"title": "x", "priority": -1}, "priority"),
            ({"title": "x", "priority": "1"}, "priority"),
            ({"title": "x", "priority": 1.5}, "priority"),
            ({"title": "x", "due": "2026-02-30"}, "due"),
            ({"title": "x", "due": "tomorrow"}, "due"),
            ({"title": "x", "position": "top"}, "position"),
            ({"title": "x", "assignee": 7}, "assignee"),
            ({"title": "x", "parent": ["p"]}, "parent"),
            ({"title": "x", "labels": "bug"}, "labels"),
            ({"title": "x", "labels": ["ok", 1]}, "labels"),
            ({"title": "x", "labels": ["  "]}, "labels"),
            ({"title": "x", "depends_on": "ws-aaaaaaaaaa"}, "depends_on"),
            ({"title": "x", "depends_on": ["ws-nosuchtask"]}, "depends_on"),
        ]
        for body, field in cases:
            with self.subTest(body=body):
                self.assert_error(self.req("POST", "/api/v1/tasks", body), 400, "bad_request", field)
        for raw in (b"", b"not json", b"[1,2]", b'"str"', b"{\"title\":", b"\xff\xfe", b"[" * 100000):
            with self.subTest(raw=raw[:20]):
                self.assert_error(self.req("POST", "/api/v1/tasks", raw), 400, "bad_request")
        self.assertEqual(self.count_tasks(), before)

    def test_create_ignores_unknown_keys(self):
        task = self.create(title="extra", color="blue", id="ws-chosenbyme")
        self.assertNotEqual(task["id"], "ws-chosenbyme")

    def test_body_over_1_mib_is_413(self):
        # Only the headers and a little of the body: h2o answers from the
        # Content-Length and closes, without reading the rest.
        s = socket.create_connection(("127.0.0.1", self.d.port), timeout=10)
        try:
            size = 1024 * 1024 + 1
            s.sendall((f"POST /api/v1/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                       f"Authorization: Bearer {self.d.token}\r\nContent-Type: application/json\r\n"
                       f"Content-Length: {size}\r\n\r\n").encode() + b'{"title":"' + b"x" * 1000)
            data = b""
            while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        finally:
            s.close()
        head, _, body = data.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 413"), head)
        self.assertEqual(error_of(json.loads(body))[0], "too_large")

    def test_body_of_exactly_1_mib_is_read(self):
        body = json.dumps({"title": "big", "padding": "x" * (1024 * 1024 - 40)}).encode()
        body += b" " * (1024 * 1024 - len(body))
        self.assertEqual(len(body), 1024 * 1024)
        status, _, task = self.req("POST", "/api/v1/tasks", body)
        self.assertEqual(status, 201, task)

    # -- get, put, patch, delete ---------------------------------------------------

    def test_get_unknown_is_404(self):
        self.assert_error(self.req("GET", "/api/v1/tasks/ws-aaaaaaaaaa"), 404, "not_found")
        self.assert_error(self.req("PATCH", "/api/v1/tasks/ws-aaaaaaaaaa", {"title": "x"}), 404, "not_found")
        self.assert_error(self.req("PUT", "/api/v1/tasks/ws-aaaaaaaaaa", {"title": "x"}), 404, "not_found")
        self.assert_error(self.req("DELETE", "/api/v1/tasks/ws-aaaaaaaaaa"), 404, "not_found")
        self.assert_error(self.req("GET", "/api/v1/tasks/ws-aaaaaaaaaa/history"), 404, "not_found")

    def test_put_replaces_given_fields(self):
        t = self.create(title="before", labels=["a", "b"], assignee="al", priority=3)
        status, _, u = self.req("PUT", "/api/v1/tasks/" + t["id"],
                                {"title": "after", "labels": ["c"], "status": "done"})
        self.assertEqual(status, 200, u)
        self.assertEqual(u["title"], "after")
        self.assertEqual(u["labels"], ["c"])
        self.assertEqual(u["status"], "done")
        self.assertEqual(u["assignee"], "al")
        self.assertEqual(u["priority"], 3)

    def test_patch_merge_semantics(self):
        dep = self.create(title="dep")
        t = self.create(title="t", body="b", assignee="al", due="2026-01-01", parent=dep["id"], labels=["x"])
        path = "/api/v1/tasks/" + t["id"]
        status, _, u = self.req("PATCH", path, {"assignee": None, "due": None, "parent": None, "body": None})
        self.assertEqual(status, 200, u)
        self.assertIsNone(u["assignee"])
        self.assertIsNone(u["due"])
        self.assertIsNone(u["parent"])
        self.assertEqual(u["body"], "")
        self.assertEqual(u["title"], "t")
        status, _, u = self.req("PATCH", path, {"add_labels": ["y", "z"], "remove_labels": ["x"],
                                                "add_depends_on": [dep["id"]]})
        self.assertEqual(status, 200, u)
        self.assertEqual(u["labels"], ["y", "z"])
        self.assertEqual(u["depends_on"], [dep["id"]])
        status, _, u = self.req("PATCH", path, {"remove_depends_on": [dep["id"]], "priority": 0,
                                                "position": -1.25})
        self.assertEqual(status, 200, u)
        self.assertEqual(u["depends_on"], [])
        self.assertEqual(u["priority"], 0)
        self.assertEqual(u["position"], -1.25)
        status, _, u = self.req("PATCH", path, {"title": None})
        self.assertEqual(status, 200, u)
        self.assertEqual(u["title"], "")
        status, _, u = self.req("PATCH", path, {})
        self.assertEqual(status, 200, u)

    def test_patch_rejections_change_nothing(self):
        t = self.create(title="keep", labels=["x"])
        path = "/api/v1/tasks/" + t["id"]
        for body, field in [({"status": None}, "status"), ({"priority": None}, "priority"),
                            ({"position": None}, "position"), ({"status": "nope"}, "status"),
                            ({"title": "new", "priority": 9}, "priority"),
                            ({"labels": ["a"], "add_labels": ["b"]}, "labels"),
                            ({"add_labels": "a"}, "add_labels"),
                            ({"title": "new", "add_depends_on": ["ws-nosuchtask"]}, "depends_on"),
                            ({"add_depends_on": [t["id"]]}, "depends_on")]:
            with self.subTest(body=body):
                self.assert_error(self.req("PATCH", path, body), 400, "bad_request", field)
        status, _, now = self.req("GET", path)
        self.assertEqual(now["title"], "keep")
        self.assertEqual(now["labels"], ["x"])
        self.assertEqual(now["updated_at"], t["updated_at"])

    def test_delete_then_410_with_tombstone(self):
        t = self.create(title="doomed")
        path = "/api/v1/tasks/" + t["id"]
        self.assertEqual(self.req("POST", path + "/comments", {"body": "last words"})[0], 201)
        status, headers, body = self.req("DELETE", path)
        self.assertEqual(status, 204, body)
        self.assertIsNone(body)
        _, body = self.assert_error(self.req("GET", path), 410, "gone")
        self.assertEqual(body["task"]["id"], t["id"])
        self.assertEqual([c["body"] for c in body["task"]["comments"]], ["last words"])
        self.assert_error(self.req("PATCH", path, {"title": "zombie"}), 410, "gone")
        self.assertNotIn(t["id"], [x["id"] for x in self.req("GET", "/api/v1/tasks?limit=1000")[2]["tasks"]])

    # -- comments and history -----------------------------------------------------

    def test_comment_is_201_with_task(self):
        t = self.create(title="talk")
        status, _, u = self.req("POST", "/api/v1/tasks/%s/comments" % t["id"], {"body": "hello"})
        self.assertEqual(status, 201, u)
        self.assertEqual(u["id"], t["id"])
        self.assertEqual(u["comments"][-1]["body"], "hello")
        self.assertEqual(u["comments"][-1]["author"], self.d.peer_id)
        for body in ({}, {"body": ""}, {"body": 3}, [], "x"):
            self.assert_error(self.req("POST", "/api/v1/tasks/%s/comments" % t["id"], body), 400,
                              "bad_request", "body")
        self.assert_error(self.req("POST", "/api/v1/tasks/ws-aaaaaaaaaa/comments", {"body": "x"}), 404,
                          "not_found")

    def test_history_oldest_first(self):
        t = self.create(title="h", labels=["a"])
        self.req("PATCH", "/api/v1/tasks/" + t["id"], {"status": "done"})
        status, _, h = self.req("GET", "/api/v1/tasks/%s/history" % t["id"])
        self.assertEqual(status, 200, h)
        types = [e["type"] for e in h["history"]]
        self.assertEqual(types[0], "task.create")
        self.assertIn("label.add", types)
        self.assertEqual(types[-1], "task.set")
        for e in h["history"]:
            self.assertEqual(set(e), {"peer", "seq", "hlc", "type", "data", "at"})
        seqs = [e["seq"] for e in h["history"]]
        self.assertEqual(seqs, sorted(seqs))

    # -- list -----------------------------------------------------------------------

    def test_list_filters_and_paging(self):
        tag = "lf%d" % time.monotonic_ns()
        a = self.create(title="la", labels=[tag], assignee=tag, priority=0, status="in_progress")
        b = self.create(title="lb", labels=[tag], priority=1, depends_on=[a["id"]])
        c = self.create(title="lc", labels=[tag], priority=4, status="done")

        def ids(query):
            status, _, body = self.req("GET", "/api/v1/tasks?" + query)
            self.assertEqual(status, 200, body)
            self.assertIn("next_cursor", body)
            return [t["id"] for t in body["tasks"]]

        self.assertEqual(ids("label=" + tag), [a["id"], b["id"], c["id"]])
        self.assertEqual(ids("label=%s&status=in_progress" % tag), [a["id"]])
        self.assertEqual(ids("label=%s&assignee=%s" % (tag, tag)), [a["id"]])
        self.assertEqual(ids("label=%s&priority=4" % tag), [c["id"]])
        self.assertNotIn(b["id"], ids("label=%s&ready=true" % tag))
        self.assertIn(a["id"], ids("label=%s&ready=true" % tag))
        self.assertEqual(ids("label=%s&blocked=true" % tag), [b["id"]])
        self.assertEqual(ids("label=%s&sort=created" % tag), [c["id"], b["id"], a["id"]])

        status, _, page1 = self.req("GET", "/api/v1/tasks?label=%s&limit=2" % tag)
        self.assertEqual([t["id"] for t in page1["tasks"]], [a["id"], b["id"]])
        self.assertIsNotNone(page1["next_cursor"])
        status, _, page2 = self.req("GET", "/api/v1/tasks?label=%s&limit=2&cursor=%s" % (tag, page1["next_cursor"]))
        self.assertEqual(status, 200, page2)
        self.assertEqual([t["id"] for t in page2["tasks"]], [c["id"]])

    def test_list_bad_parameters_are_400(self):
        for query, name in [("priority=9", "priority"), ("priority=x", "priority"), ("limit=0", "limit"),
                            ("limit=abc", "limit"), ("limit=-1", "limit"), ("ready=maybe", "ready"),
                            ("blocked=2", "blocked"), ("sort=sideways", "sort"),
                            ("cursor=%%%%garbage", "cursor"), ("status=", "status")]:
            with self.subTest(query=query):
                st, _, body = self.req("GET", "/api/v1/tasks?" + query)
                self.assertEqual(st, 400, body)
                code, msg = error_of(body)
                self.assertEqual(code, "bad_request")
                if name != "cursor":
                    self.assertIn(name, msg)

    def test_list_limit_is_capped(self):
        status, _, body = self.req("GET", "/api/v1/tasks?limit=5000")
        self.assertEqual(status, 200, body)
        self.assertLessEqual(len(body["tasks"]), 1000)

    def test_search(self):
        word = "zebra%d" % time.monotonic_ns()
        t = self.create(title="find the " + word)
        status, _, body = self.req("GET", "/api/v1/search?q=" + word)
        self.assertEqual(status, 200, body)
        self.assertIn(t["id"], [h["id"] for h in body["hits"]])
        for hit in body["hits"]:
            self.assertEqual(set(hit), {"id", "title", "snippet", "score"})
        self.assert_error(self.req("GET", "/api/v1/search"), 400, "bad_request", "q")
        self.assert_error(self.req("GET", "/api/v1/search?q=%28unbalanced"), 400, "bad_request", "q")
        self.assert_error(self.req("GET", "/api/v1/search?q=x&limit=0"), 400, "bad_request", "limit")

    # -- other endpoints ---------------------------------------------------------------

    def test_sync_peers_problems(self):
        self.create(title="clocked")
        status, _, body = self.req("GET", "/api/v1/sync")
        self.assertEqual(status, 200)
        self.assertEqual(body["peer_id"], self.d.peer_id)
        self.assertGreaterEqual(body["clock"][self.d.peer_id], 1)
        self.assertEqual(body["peers"], [])
        self.assertEqual(self.req("GET", "/api/v1/peers")[2], {"peers": []})
        self.assertEqual(self.req("GET", "/api/v1/problems")[2], {"problems": []})

    def test_peers_and_sync_shapes(self):
        status, headers, body = self.req("GET", "/api/v1/peers")
        self.assertEqual(status, 200, body)
        self.assertIn("json", headers["content-type"])
        self.assertEqual(set(body), {"peers"})
        self.assertIsInstance(body["peers"], list)
        for p in body["peers"]:
            check_peer(self, p)
        status, _, body = self.req("GET", "/api/v1/sync")
        self.assertEqual(status, 200, body)
        self.assertEqual(set(body), {"peer_id", "clock", "peers"})
        self.assertEqual(body["peer_id"], self.d.peer_id)
        self.assertIsInstance(body["clock"], dict)
        self.assertIsInstance(body["peers"], list)

    def test_peer_connect_rejections_are_400(self):
        bodies = ["", "not json", "[]", "{}", {"url": 5}, {"url": None}, {"url": ""},
                  {"url": ["ws://127.0.0.1:1/api/v1/signal"]}, {"uri": "ws://127.0.0.1:1/api/v1/signal"}]
        for body in bodies:
            with self.subTest(body=body):
                self.assert_error(self.req("POST", "/api/v1/peers", body), 400, "bad_request", "url")
        for url in ("http://127.0.0.1:1/api/v1/signal", "127.0.0.1:1", "ftp://x/", "ws:/nohost"):
            with self.subTest(url=url):
                self.assert_error(self.req("POST", "/api/v1/peers", {"url": url}), 400, "bad_request")
        # A bad request changes nothing.
        self.assertEqual(self.req("GET", "/api/v1/peers")[2], {"peers": []})

    def test_peer_drop_malformed_is_400_unknown_is_404(self):
        for bad in ("nothex", "0123456789ABCDEF", "0123456789abcde", "0123456789abcdef0",
                    "zzzzzzzzzzzzzzzz"):
            with self.subTest(peer_id=bad):
                self.assert_error(self.req("DELETE", "/api/v1/peers/" + bad), 400, "bad_request")
        self.assert_error(self.req("DELETE", "/api/v1/peers/" + UNKNOWN_PEER), 404, "not_found")
        self.assert_error(self.req("DELETE", f"/api/v1/peers/{UNKNOWN_PEER}/x"), 404, "not_found")
        for method, path in [("PUT", "/api/v1/peers"), ("DELETE", "/api/v1/peers"),
                             ("GET", "/api/v1/peers/" + UNKNOWN_PEER)]:
            with self.subTest(method=method, path=path):
                self.assert_error(self.req(method, path), 405, "method_not_allowed")

    def test_metrics(self):
        self.create(title="counted")
        status, headers, text = self.req("GET", "/metrics", token=False)
        self.assertEqual(status, 200)
        self.assertIn("text/plain", headers["content-type"])
        for name in ("wsp_http_requests_total{code=\"201\"}", "wsp_ops_applied_total", "wsp_store_queue_depth",
                     "wsp_store_queue_max", "wsp_tasks", "wsp_sse_clients",
                     "wsp_http_request_duration_seconds_bucket", "wsp_http_request_duration_seconds_count"):
            self.assertIn(name, text)
        applied = int(re.search(r"^wsp_ops_applied_total (\d+)$", text, re.M).group(1))
        self.assertGreaterEqual(applied, 1)
        self.assertRegex(text, r"(?m)^wsp_peers 0$")

    def test_unknown_path_is_404_json(self):
        for path in ("/api/v1/nothing", "/api/v2/tasks", "/nothing", "/api/v1/tasks/x/y",
                     "/api/v1/tasks/ws-aaaaaaaaaa/comments/1"):
            with self.subTest(path=path):
                self.assert_error(self.req("GET", path), 404, "not_found")

    def test_wrong_method_is_405_json(self):
        for method, path in [("DELETE", "/api/v1/tasks"), ("PUT", "/api/v1/health"), ("POST", "/api/v1/sync"),
                             ("GET", "/api/v1/tasks/ws-aaaaaaaaaa/comments"), ("POST", "/api/v1/events"),
                             ("POST", "/metrics"), ("DELETE", "/")]:
            with self.subTest(method=method, path=path):
                headers, _ = self.assert_error(self.req(method, path), 405, "method_not_allowed")
                self.assertIn("allow", headers)

    # -- SSE ----------------------------------------------------------------------------

    def test_events_after_create(self):
        stream = SseStream(self.d.port, self.d.token)
        try:
            self.assertEqual(stream.status, 200)
            self.assertIn("text/event-stream", stream.headers)
            t = self.create(title="announced")
            deadline = time.monotonic() + 10
            while True:
                ev = stream.next_event(deadline)
                if t["id"] in ev["tasks"]:
                    break
            self.assertGreaterEqual(ev["clock"][self.d.peer_id], 1)
        finally:
            stream.close()

    def test_events_needs_token(self):
        self.assert_error(self.req("GET", "/api/v1/events", token=False), 401, "unauthorized")

    # -- board login ----------------------------------------------------------------------

    def board_url(self):
        m = re.search(r"WorkStream board: (http://\S+)", self.d.log())
        self.assertIsNotNone(m, self.d.log())
        return m.group(1)

    def test_board_login_flow(self):
        url = self.board_url()
        m = re.match(r"http://127\.0\.0\.1:(\d+)(/\?login=[0-9a-f]+)$", url)
        self.assertIsNotNone(m, url)
        self.assertEqual(int(m.group(1)), self.d.port)
        status, headers, _ = self.req("GET", m.group(2), token=False)
        if status == 403:
            self.skipTest("the one-time login was already used by another test")
        self.assertEqual(status, 303)
        self.assertEqual(headers["location"], "/")
        cookie = headers["set-cookie"]
        for attr in ("HttpOnly", "SameSite=Strict", "Path=/"):
            self.assertIn(attr, cookie)
        session = cookie.split(";", 1)[0]
        self.assertTrue(session.startswith("wsp_session="))
        # The cookie authenticates /api/ …
        status, _, body = self.req("GET", "/api/v1/tasks", token=False, headers={"Cookie": session})
        self.assertEqual(status, 200, body)
        status, _, body = self.req("POST", "/api/v1/tasks", {"title": "from the board"}, token=False,
                                   headers={"Cookie": "other=1; " + session,
                                            "Origin": "http://127.0.0.1:%d" % self.d.port})
        self.assertEqual(status, 201, body)
        # … but not a cross-origin write.
        self.assert_error(self.req("POST", "/api/v1/tasks", {"title": "csrf"}, token=False,
                                   headers={"Cookie": session, "Origin": "http://evil.example"}),
                          403, "forbidden")
        # The login token was one-time.
        status, _, _ = self.req("GET", m.group(2), token=False)
        self.assertEqual(status, 403)
        status, headers, text = self.req("GET", "/", token=False)
        self.assertEqual(status, 200)
        self.assertIn("text/html", headers["content-type"])

    def test_bad_login_token_is_403(self):
        status, headers, text = self.req("GET", "/?login=" + "ab" * 32, token=False)
        self.assertEqual(status, 403)
        self.assertNotIn("set-cookie", headers)


class PeerApiTest(unittest.TestCase):
    """Two daemons of one project: A connects to B through POST /api/v1/peers,
    both list each other, /metrics counts the channel, and DELETE drops it."""

    def setUp(self):
        self.a = Daemon(extra_args=["--peer-listen", "127.0.0.1:0"]).start()
        self.addCleanup(self.a.workspace.cleanup)
        self.addCleanup(self.a.stop)
        # B joins A's project with a token naming a dead address, so it only
        # meets A through A's connect.
        r = self.a.wsp("invite", "--url", "ws://127.0.0.1:1/api/v1/signal")
        self.assertEqual(r.returncode, 0, r.stderr)
        ws = Workspace(init=False)
        self.addCleanup(ws.cleanup)
        r = run_wsp("join", r.stdout.strip(), ws.dir)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.b = Daemon(ws, extra_args=["--peer-listen", "127.0.0.1:0"]).start()
        self.addCleanup(self.b.stop)

    def peer_in(self, d, peer_id, state="connected"):
        status, _, body = d.request("GET", "/api/v1/peers")
        self.assertEqual(status, 200, body)
        for p in body["peers"]:
            check_peer(self, p)
        return next((p for p in body["peers"] if p["peer_id"] == peer_id and p["state"] == state), None)

    def test_connect_list_metrics_drop(self):
        url = self.b.info["peer_url"]
        self.assertTrue(url and url.startswith("ws://127.0.0.1:"), self.b.info)
        status, _, body = self.a.request("POST", "/api/v1/peers", {"url": url})
        self.assertEqual(status, 202, body)
        self.assertEqual(body, {"url": url, "state": "connecting"})

        p = wait_until(lambda: self.peer_in(self.a, self.b.peer_id), timeout=30,
                       what=f"A to list B connected\nA:\n{self.a.log()}\nB:\n{self.b.log()}")
        self.assertIsNotNone(p["connected_at"])
        wait_until(lambda: self.peer_in(self.b, self.a.peer_id), timeout=30, what="B to list A connected")

        task = self.a.create_task("travels to B")
        wait_until(lambda: self.b.request("GET", "/api/v1/tasks/" + task["id"])[0] == 200, timeout=30,
                   what="the task to reach B")
        status, _, sync = self.a.request("GET", "/api/v1/sync")
        self.assertEqual(status, 200, sync)
        self.assertIn(self.b.peer_id, [p["peer_id"] for p in sync["peers"]])
        _, _, metrics = self.a.request("GET", "/metrics")
        self.assertRegex(metrics, r"(?m)^wsp_peers 1$")

        status, _, body = self.a.request("DELETE", "/api/v1/peers/" + self.b.peer_id)
        self.assertEqual(status, 204, body)
        self.assertIsNone(body)
        wait_until(lambda: self.peer_in(self.a, self.b.peer_id) is None, timeout=10,
                   what="B to be dropped by A")


class ShutdownTest(unittest.TestCase):
    def test_sigterm_with_open_stream_and_keepalive_exits_0_quickly(self):
        d = Daemon().start()
        try:
            stream = SseStream(d.port, d.token)
            keep = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10)
            keep.request("GET", "/api/v1/health", headers={"Host": "localhost"})
            self.assertEqual(keep.getresponse().read()[:1], b"{")
            t0 = time.monotonic()
            code = d.stop(signal.SIGTERM, timeout=10)
            elapsed = time.monotonic() - t0
            self.assertEqual(code, 0, d.log())
            self.assertLess(elapsed, 5.0)
            stream.wait_closed(5)
            stream.close()
            keep.close()
        finally:
            d.stop()
            d.workspace.cleanup()

    def test_listen_on_a_taken_port_fails_clearly(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen()
            port = s.getsockname()[1]
            d = Daemon(extra_args=["--listen", "127.0.0.1:%d" % port])
            try:
                with self.assertRaises(Exception):
                    d.start(timeout=10)
                self.assertIn(str(port), d.log())
            finally:
                d.stop()
                d.workspace.cleanup()


if __name__ == "__main__":
    unittest.main(verbosity=2)
