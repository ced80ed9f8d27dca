#!/usr/bin/env python3
"""test_sync.py -- peer sync between real wspd processes (SPEC 3, 5, 7).

Two or three daemons of one project on loopback: a listener (A, started
with --peer-listen 127.0.0.1:0) and members that connect to it (their
[sync] signal_urls, or POST /api/v1/peers). Every daemon pins ICE to
127.0.0.1. When the system allows it, the module first re-executes itself
in a fresh network namespace holding only `lo` (`unshare -rn`, or
`unshare -n` as root), so nothing could leave the machine even if pinning
broke; otherwise it runs pinned only.

Covered: creates and edits both ways, the peers/sync views and the CLI;
catch-up after being offline; a partition with concurrent edits, then a
heal (LWW + conflicts, OR-sets, delete wins); three daemons (B-C direct
channel survives A); kill -9 during a large sync (both offer directions);
a wrong project secret gets nothing; dropping a peer and connecting
again; SIGTERM sends the goodbye.

Waits are event-driven with deadlines (polling /api/v1/sync, /peers or a
daemon's log every 20-50 ms); deadlines scale by 3 for a sanitizer build.
Every daemon that is stopped with SIGTERM must exit 0 (under ASan that
includes LeakSanitizer), and no daemon log may hold a sanitizer report.

Run: python3 tests/integration/test_sync.py -v   (env WSPD, WSP: the
binaries; default build/src/wspd and build/src/wsp).
"""

import json
import os
import signal
import sys
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wsphelper import (PEER_ARGS, PEER_LISTEN_ARGS, Daemon, HttpPool, Workspace,  # noqa: E402
                       binary, config_get, config_set, make_member, new_workspace_with_id,
                       reexec_in_netns, run_wsp, wait_until)

def _sanitized():
    """True when wspd carries AddressSanitizer (slower: deadlines x3)."""
    try:
        with open(binary("wspd"), "rb") as f:
            return b"__asan_init" in f.read()
    except (OSError, RuntimeError):
        return False


SCALE = 3.0 if _sanitized() else 1.0
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "SUMMARY: UndefinedBehaviorSanitizer")
# A restarted peer must have its channel back well before the 3 missed
# pings (30-40 s) that detect a dead channel: SPEC 7.2 retries start at
# 0.5 s. Not scaled: the bug it catches would pass with a x3 deadline.
RECONNECT_S = 10.0


def dl(seconds):
    """A deadline in seconds, scaled for sanitizer builds."""
    return seconds * SCALE


class SyncTest(unittest.TestCase):
    """Base: daemons and workspaces cleaned up even on failure."""

    # -- set-up helpers ---------------------------------------------------

    def workspace_with_id(self):
        ws, pid = new_workspace_with_id()
        self.addCleanup(ws.cleanup)
        return ws, pid

    def member_workspace(self, src, urls=None, smaller_than=None, larger_than=None):
        """A new workspace in SRC's project (copied id and secret); with
        SMALLER_THAN/LARGER_THAN (peer ids) its own id is chosen so, by
        making fresh identities until it compares so (who offers, SPEC
        7.1 rule 5, is the smaller id)."""
        while True:
            ws, pid = new_workspace_with_id()
            if (smaller_than is None or pid < smaller_than) and \
                    (larger_than is None or pid > larger_than):
                break
            ws.cleanup()
        self.addCleanup(ws.cleanup)
        make_member(src, ws, urls)
        return ws, pid

    def daemon(self, ws, listener=False):
        """A started wspd on WS (pinned to 127.0.0.1; a peer listener on
        127.0.0.1 with LISTENER), stopped and checked at cleanup."""
        d = Daemon(ws, extra_args=PEER_LISTEN_ARGS if listener else PEER_ARGS)
        self.addCleanup(self._stop_checked, d)
        return d.start(timeout=dl(15))

    def _stop_checked(self, d):
        rc = 0
        if d.proc is not None and d.proc.poll() is None:
            rc = d.stop(timeout=dl(10))
        log = d.log()
        marks = [m for m in SANITIZER_MARKS if m in log]
        if marks:
            self.fail(f"sanitizer report in the log of wspd on {d.workspace.dir}:\n{log[-8000:]}")
        if rc != 0:
            self.fail(f"wspd on {d.workspace.dir} exited {rc} on SIGTERM:\n{log[-4000:]}")

    def pair(self, offerer=None):
        """A (listener) and B (member, signal_urls = A's peer url), started
        and connected. OFFERER 'A' or 'B' fixes which has the smaller id."""
        wa, ida = self.workspace_with_id()
        a = self.daemon(wa, listener=True)
        wb, idb = self.member_workspace(wa, [a.info["peer_url"]],
                                        larger_than=ida if offerer == "A" else None,
                                        smaller_than=ida if offerer == "B" else None)
        b = self.daemon(wb)
        self.wait_connected(a, b)
        return a, b

    # -- observation helpers ----------------------------------------------

    def get(self, d, path):
        status, _, body = d.request("GET", path, timeout=dl(30))
        self.assertEqual(status, 200, f"GET {path}: {status} {body}")
        return body

    def peers(self, d):
        return self.get(d, "/api/v1/peers")["peers"]

    def peer_entry(self, d, peer_id):
        for p in self.peers(d):
            if p["peer_id"] == peer_id:
                return p
        return None

    def clock(self, d):
        return self.get(d, "/api/v1/sync")["clock"]

    def is_connected(self, d, other):
        p = self.peer_entry(d, other.peer_id)
        return p is not None and p["state"] == "connected"

    def wait_connected(self, *ds, timeout=None):
        """Every daemon of DS shows every other one connected."""
        def ok():
            return all(self.is_connected(x, y) for x in ds for y in ds if x is not y)
        wait_until(ok, timeout or dl(15), 0.03,
                   what="peers connected: " + self.describe(*ds))

    def wait_converged(self, *ds, timeout=None):
        """Equal vector clocks on every daemon of DS; returns the clock."""
        def ok():
            cs = [self.clock(d) for d in ds]
            return cs[0] if all(c == cs[0] for c in cs[1:]) else None
        try:
            return wait_until(ok, timeout or dl(20), 0.03, what="equal clocks")
        except AssertionError as e:
            raise AssertionError(f"{e}: " + " | ".join(json.dumps(self.clock(d)) for d in ds)
                                 + "\n" + self.describe(*ds)) from None

    def wait_settled(self, a, b, timeout=None):
        """A and B each show the other connected with nothing to exchange."""
        def ok():
            for x, y in ((a, b), (b, a)):
                p = self.peer_entry(x, y.peer_id)
                if p is None or p["state"] != "connected" or p["ops_they_lack"] or p["ops_we_lack"]:
                    return False
            return True
        try:
            wait_until(ok, timeout or dl(10), 0.03, what="settled peers")
        except AssertionError as e:
            raise AssertionError(f"{e}: A={a.peer_id} peers {self.peers(a)} clock {self.clock(a)}; "
                                 f"B={b.peer_id} peers {self.peers(b)} clock {self.clock(b)}") from None

    def wait_log(self, d, needle, timeout=None):
        try:
            wait_until(lambda: needle in d.log(), timeout or dl(10), 0.03,
                       what=f"'{needle}' in the log of {d.peer_id}")
        except AssertionError as e:
            raise AssertionError(f"{e}:\n{d.log()[-3000:]}") from None

    def wait_task(self, d, tid, pred=lambda s, b: s == 200, timeout=None, what=None):
        """Polls GET /api/v1/tasks/TID on D until PRED(status, body)."""
        last = []

        def ok():
            status, _, body = d.request("GET", f"/api/v1/tasks/{tid}", timeout=dl(30))
            last[:] = [status, body]
            return pred(status, body)
        try:
            wait_until(ok, timeout or dl(10), 0.03, what=what or f"task {tid} on {d.peer_id}")
        except AssertionError as e:
            raise AssertionError(f"{e}; last answer {last}\n{self.describe(d)}") from None
        return last[1]

    def describe(self, *ds):
        """Peer ids and the peers view of each, for failure messages."""
        out = []
        for d in ds:
            try:
                peers = [(p["peer_id"], p["state"], p["last_error"]) for p in self.peers(d)]
            except Exception as e:   # noqa: BLE001 -- only for a message
                peers = repr(e)
            out.append(f"{d.peer_id}: {peers}")
        return "; ".join(out)

    def task_ids(self, d):
        """Every live task id on D (all pages)."""
        ids, cursor = [], None
        while True:
            q = "/api/v1/tasks?limit=1000" + (f"&cursor={urllib.parse.quote(cursor)}" if cursor else "")
            page = self.get(d, q)
            ids += [t["id"] for t in page["tasks"]]
            cursor = page.get("next_cursor")
            if not cursor:
                return ids

    def snapshot(self, d, ids):
        """{id: (status, body)} of GET /api/v1/tasks/{id} on D."""
        pool = HttpPool(d, timeout=dl(30))
        try:
            got = pool.map(lambda p, tid: p.request("GET", f"/api/v1/tasks/{tid}"), ids, threads=4)
        finally:
            pool.close()
        return dict(zip(ids, got))

    def assert_identical(self, *ds, extra_ids=()):
        """For every task id any of DS lists (and EXTRA_IDS: deleted ones),
        GET /api/v1/tasks/{id} answers the same status and body on all."""
        ids = set(extra_ids)
        for d in ds:
            ids.update(self.task_ids(d))
        ids = sorted(ids)
        snaps = [self.snapshot(d, ids) for d in ds]
        for tid in ids:
            for d, snap in zip(ds[1:], snaps[1:]):
                self.assertEqual(snaps[0][tid], snap[tid],
                                 f"task {tid} differs between {ds[0].peer_id} and {d.peer_id}")
        return ids

    def bulk_create(self, d, titles, threads=4, **fields):
        pool = HttpPool(d, timeout=dl(30))
        try:
            res = pool.map(lambda p, t: p.request("POST", "/api/v1/tasks", {"title": t, **fields}),
                           titles, threads=threads)
        finally:
            pool.close()
        for status, body in res:
            self.assertEqual(status, 201, body)
        return [body for _, body in res]

    def patch(self, d, tid, body, expect=200):
        status, _, out = d.request("PATCH", f"/api/v1/tasks/{tid}", body)
        self.assertEqual(status, expect, f"PATCH {tid} {body}: {out}")
        return out

    def comment(self, d, tid, text):
        status, _, out = d.request("POST", f"/api/v1/tasks/{tid}/comments", {"body": text})
        self.assertEqual(status, 201, out)
        return out


class Sync(SyncTest):

    # 1 -----------------------------------------------------------------------
    def test_1_two_daemons_both_ways(self):
        wa, _ = self.workspace_with_id()
        a = self.daemon(wa, listener=True)
        # B joins through the invite token (SPEC 6), which carries A's url.
        r = wa.wsp("invite")
        self.assertEqual(r.returncode, 0, r.stderr)
        token = r.stdout.strip()
        wb = Workspace(init=False, prefix="wsp-sync-")
        self.addCleanup(wb.cleanup)
        r = run_wsp("--json", "join", token, wb.dir)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["signal_urls"], [a.info["peer_url"]])
        self.assertEqual(config_get(wb, "sync", "signal_urls"), a.info["peer_url"])
        b = self.daemon(wb)
        self.assertEqual(b.info["project_id"], a.info["project_id"])
        self.wait_connected(a, b)

        # A → B: the whole task JSON is equal.
        t1 = a.create_task("made on A", body="*body*", priority=1, assignee="alice",
                           labels=["sync", "a"], due="2026-12-01")
        got = self.wait_task(b, t1["id"])
        self.assertEqual(got, self.get(a, f"/api/v1/tasks/{t1['id']}"))
        # B → A.
        t2 = b.create_task("made on B", labels=["b"], depends_on=[t1["id"]])
        got = self.wait_task(a, t2["id"])
        self.assertEqual(got, self.get(b, f"/api/v1/tasks/{t2['id']}"))
        self.assertEqual(got["created_by"], b.peer_id)
        # Edits both ways.
        self.patch(a, t2["id"], {"title": "renamed on A"})
        self.wait_task(b, t2["id"], lambda s, body: s == 200 and body["title"] == "renamed on A")
        self.comment(b, t1["id"], "comment from B")
        got = self.wait_task(a, t1["id"], lambda s, body: s == 200 and body["comments"])
        self.assertEqual([(c["author"], c["body"]) for c in got["comments"]],
                         [(b.peer_id, "comment from B")])

        self.wait_converged(a, b)
        self.assert_identical(a, b)
        for x, y in ((a, b), (b, a)):
            p = self.peer_entry(x, y.peer_id)
            self.assertEqual(p["state"], "connected")
            self.assertGreater(p["bytes_sent"], 0)
            self.assertGreater(p["bytes_received"], 0)
            self.assertIsNotNone(p["connected_at"])
            self.assertTrue(p["address"].startswith("127.0.0.1:"), p)
            s = self.get(x, "/api/v1/sync")
            self.assertEqual(s["peer_id"], x.peer_id)
            self.assertEqual(s["clock"], self.clock(y))
        self.assertEqual(self.peer_entry(b, a.peer_id)["via"], "listener")
        self.assertEqual(self.peer_entry(a, b.peer_id)["via"], "member")

        # The CLI shows the same.
        r = b.wsp("--json", "peer", "list")
        self.assertEqual(r.returncode, 0, r.stderr)
        listed = json.loads(r.stdout)["peers"]
        self.assertEqual([(p["peer_id"], p["state"]) for p in listed], [(a.peer_id, "connected")])
        r = a.wsp("--json", "sync")
        self.assertEqual(r.returncode, 0, r.stderr)
        s = json.loads(r.stdout)
        self.assertEqual(s["clock"], self.clock(b))
        self.assertEqual([p["peer_id"] for p in s["peers"]], [b.peer_id])
        r = a.wsp("sync")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b.peer_id, r.stdout)

        # Once settled, neither side lacks anything. (The last op here is
        # B's: A must not count B's own newest op as one B lacks.)
        self.wait_settled(a, b)

    # 2 -----------------------------------------------------------------------
    def test_2_catch_up_after_offline(self):
        a, b = self.pair()
        shared = self.bulk_create(a, [f"shared {i}" for i in range(10)])
        self.wait_converged(a, b)
        self.assertEqual(b.stop(), 0, b.log())
        self.wait_log(a, "peer said shutdown")

        # 200 changes on A while B is down.
        before = sum(self.clock(a).values())
        new = self.bulk_create(a, [f"offline {i}" for i in range(80)])
        pool = HttpPool(a, timeout=dl(30))
        try:
            targets = [t["id"] for t in shared + new]

            def change(p, i):
                tid = targets[i % len(targets)]
                if i % 3 == 0:
                    return p.request("PATCH", f"/api/v1/tasks/{tid}", {"title": f"edit {i}"})
                if i % 3 == 1:
                    return p.request("POST", f"/api/v1/tasks/{tid}/comments", {"body": f"c {i}"})
                return p.request("PATCH", f"/api/v1/tasks/{tid}",
                                 {"add_labels": [f"l{i % 7}"], "priority": i % 5})
            for status, body in pool.map(change, range(120)):
                self.assertIn(status, (200, 201), body)
        finally:
            pool.close()
        self.assertGreaterEqual(sum(self.clock(a).values()) - before, 200)
        status, _, _ = a.request("DELETE", f"/api/v1/tasks/{shared[0]['id']}")
        self.assertEqual(status, 204)

        b.start(timeout=dl(15))
        clock = self.wait_converged(a, b)
        self.assertEqual(clock, self.clock(a))
        ids = self.assert_identical(a, b, extra_ids=[shared[0]["id"]])
        self.assertEqual(len(ids), 90)
        self.assertEqual(b.request("GET", f"/api/v1/tasks/{shared[0]['id']}")[0], 410)
        self.wait_settled(a, b)

    def test_2b_task_files_follow_a_catch_up(self):
        # A catch-up of more tasks than the file mirror renders at once
        # (BULK_RENDER_MIN, 256): B's renders wait while received runs are
        # pending in its store, then every task file appears with what the
        # store holds.
        a, b = self.pair()
        self.assertEqual(b.stop(), 0, b.log())
        self.wait_log(a, "peer said shutdown")
        made = self.bulk_create(a, [f"caught up {i}" for i in range(320)], priority=2)
        b.start(timeout=dl(15))
        self.wait_converged(a, b)
        tasks_dir = os.path.join(b.workspace.root, "tasks")

        def missing():
            out = []
            for t in made:
                try:
                    with open(os.path.join(tasks_dir, f"{t['id']}.md"), encoding="utf-8") as f:
                        text = f.read()
                except FileNotFoundError:
                    text = ""
                if f"title: {t['title']}" not in text and f'title: "{t["title"]}"' not in text:
                    out.append(t["id"])
            return out
        wait_until(lambda: not missing(), dl(20), 0.05,
                   what="every task file on B")

    # 3 -----------------------------------------------------------------------
    def test_3_partition_concurrent_edits_then_heal(self):
        a, b = self.pair()
        ts = self.bulk_create(a, [f"t{i}" for i in range(7)])
        ids = [t["id"] for t in ts]
        self.patch(a, ids[2], {"add_labels": ["keep", "x"]})
        self.patch(a, ids[5], {"body": "shared body"})
        self.wait_converged(a, b)
        self.assert_identical(a, b)

        # Partition: B stops and comes back unconnected (no signal_urls).
        self.assertEqual(b.stop(), 0, b.log())
        self.wait_log(a, "peer said shutdown")
        config_set(b.workspace, "sync", "signal_urls", None)
        self.assertFalse(os.path.exists(os.path.join(b.workspace.wsp_dir, "peer-urls")))
        b.start(timeout=dl(15))
        self.assertEqual(self.peers(b), [])

        # Concurrent edits.
        self.patch(a, ids[0], {"title": "title from A", "status": "in_progress"})
        self.patch(b, ids[0], {"title": "title from B", "status": "done"})
        self.patch(a, ids[1], {"add_labels": ["from-a"]})
        self.patch(b, ids[1], {"add_labels": ["from-b"]})
        self.patch(a, ids[2], {"remove_labels": ["x"]})
        self.patch(b, ids[2], {"add_labels": ["y"]})
        self.patch(a, ids[3], {"add_depends_on": [ids[4]]})
        self.patch(b, ids[3], {"add_depends_on": [ids[6]]})
        status, _, _ = a.request("DELETE", f"/api/v1/tasks/{ids[4]}")
        self.assertEqual(status, 204)
        self.patch(b, ids[4], {"title": "edited on B", "add_labels": ["late"]})
        self.comment(b, ids[4], "comment on a task A deleted")
        self.patch(a, ids[5], {"body": "body from A"})
        self.patch(b, ids[5], {"body": "body from B"})
        self.comment(a, ids[5], "from A")
        self.comment(b, ids[5], "from B")
        only_a = a.create_task("only on A")["id"]
        only_b = b.create_task("only on B")["id"]

        # Heal: B connects at run time.
        status, _, body = b.request("POST", "/api/v1/peers", {"url": a.info["peer_url"]})
        self.assertEqual(status, 202, body)
        self.wait_connected(a, b)
        self.wait_converged(a, b)
        all_ids = self.assert_identical(a, b, extra_ids=[ids[4]])
        self.assertIn(only_a, all_ids)
        self.assertIn(only_b, all_ids)
        self.wait_settled(a, b)

        # LWW by (hlc, peer), and the losing title and body are conflicts.
        def winner(tid, field):
            hist = self.get(a, f"/api/v1/tasks/{tid}/history")["history"]
            writes = [h for h in hist if h["type"] == "task.set" and h["data"]["field"] == field]
            best = max(writes, key=lambda h: (h["hlc"], h["peer"]))
            return best, [h for h in writes if h is not best]

        t0 = self.get(b, f"/api/v1/tasks/{ids[0]}")
        win, lose = winner(ids[0], "title")
        self.assertEqual(t0["title"], win["data"]["value"])
        self.assertEqual(len(lose), 1)
        self.assertEqual([(c["field"], c["value"], c["peer"]) for c in t0["conflicts"]],
                         [("title", lose[0]["data"]["value"], lose[0]["peer"])])
        self.assertEqual(t0["conflicts"][0]["at"], lose[0]["at"])
        self.assertEqual(t0["status"], winner(ids[0], "status")[0]["data"]["value"])
        t5 = self.get(a, f"/api/v1/tasks/{ids[5]}")
        win, lose = winner(ids[5], "body")
        lose = [h for h in lose if h["data"]["value"] != "shared body"]   # followed by both
        self.assertEqual(t5["body"], win["data"]["value"])
        self.assertEqual([(c["field"], c["value"]) for c in t5["conflicts"]],
                         [("body", lose[0]["data"]["value"])])
        self.assertEqual(sorted(c["body"] for c in t5["comments"]), ["from A", "from B"])
        # OR-sets: both adds survive; a remove cancels only what it saw.
        self.assertEqual(self.get(a, f"/api/v1/tasks/{ids[1]}")["labels"], ["from-a", "from-b"])
        self.assertEqual(self.get(a, f"/api/v1/tasks/{ids[2]}")["labels"], ["keep", "y"])
        self.assertEqual(self.get(a, f"/api/v1/tasks/{ids[3]}")["depends_on"],
                         sorted([ids[4], ids[6]]))
        # Delete wins, the comment made meanwhile is kept.
        for d in (a, b):
            status, _, body = d.request("GET", f"/api/v1/tasks/{ids[4]}")
            self.assertEqual(status, 410, body)
            self.assertEqual([c["body"] for c in body["task"]["comments"]],
                             ["comment on a task A deleted"])

    # 4 -----------------------------------------------------------------------
    def test_4_three_daemons_b_c_survive_a(self):
        wa, _ = self.workspace_with_id()
        a = self.daemon(wa, listener=True)
        wb, _ = self.member_workspace(wa, [a.info["peer_url"]])
        wc, _ = self.member_workspace(wa, [a.info["peer_url"]])
        b = self.daemon(wb)
        c = self.daemon(wc)
        self.wait_connected(a, b, c)
        self.assertEqual(self.peer_entry(c, b.peer_id)["via"], "relay")

        t = b.create_task("from B")
        got = self.wait_task(c, t["id"])
        self.assertEqual(got, self.get(b, f"/api/v1/tasks/{t['id']}"))
        self.wait_converged(a, b, c)

        self.assertEqual(a.stop(), 0, a.log())
        # B-C needs A no more: edits both ways over the direct channel.
        self.patch(b, t["id"], {"title": "edited on B without A"})
        self.wait_task(c, t["id"], lambda s, body: s == 200 and body["title"] == "edited on B without A")
        t2 = c.create_task("from C without A")
        self.wait_task(b, t2["id"])
        self.comment(b, t2["id"], "reply from B")
        self.wait_task(c, t2["id"], lambda s, body: s == 200 and len(body["comments"]) == 1)
        self.wait_converged(b, c)
        self.assert_identical(b, c)
        self.assertTrue(self.is_connected(b, c), self.describe(b, c))
        self.assertTrue(self.is_connected(c, b), self.describe(b, c))

    # 5 -----------------------------------------------------------------------
    def test_5_kill9_during_large_sync(self):
        # Both directions of SPEC 7.1 rule 5: the restarted peer offers, or
        # the survivor (who still holds the dead channel) does.
        for offerer in ("killed peer offers", "survivor offers"):
            with self.subTest(offerer):
                self._kill9_during_sync(survivor_offers=offerer == "survivor offers")

    def _kill9_during_sync(self, survivor_offers):
        wa, ida = self.workspace_with_id()
        a = self.daemon(wa, listener=True)
        wb, idb = self.member_workspace(wa, [a.info["peer_url"]],
                                        larger_than=ida if survivor_offers else None,
                                        smaller_than=None if survivor_offers else ida)
        n = 3000
        self.bulk_create(a, [f"bulk {i}" for i in range(n)], threads=6)
        a_clock = self.clock(a)
        self.assertEqual(a_clock, {a.peer_id: n})

        b = Daemon(wb, extra_args=PEER_ARGS)
        self.addCleanup(self._stop_checked, b)
        b.start(timeout=dl(15))
        seen = None
        deadline = time.monotonic() + dl(20)
        while seen is None:
            p = self.peer_entry(b, a.peer_id)
            got = self.clock(b).get(a.peer_id, 0)
            if p and p["bytes_received"] > 0 and got < n and (got > 0 or p["bytes_received"] > 4096):
                seen = f"mid-sync: {got}/{n} applied, {p['bytes_received']} bytes"
            elif got == n:
                seen = "too late: B had everything"
            elif time.monotonic() > deadline:
                self.fail("B never started receiving: " + self.describe(a, b))
            else:
                time.sleep(0.02)
        b.kill()
        sys.stderr.write(f"[kill -9 {seen}] ")

        t0 = time.monotonic()
        b.start(timeout=dl(15))
        try:
            self.wait_connected(a, b, timeout=RECONNECT_S)
        except AssertionError as e:
            raise AssertionError(
                f"after kill -9 and restart of B ({b.peer_id}), no channel with A ({a.peer_id}) "
                f"within {RECONNECT_S} s ({'A' if survivor_offers else 'B'} has the smaller id "
                f"and offers): {e}\nA log:\n{a.log()[-2500:]}\nB log:\n{b.log()[-2500:]}") from None
        self.wait_converged(a, b, timeout=dl(30))
        sys.stderr.write(f"[reconnected+converged in {time.monotonic() - t0:.1f} s] ")
        ids = self.task_ids(b)
        self.assertEqual(len(ids), n)
        self.assertEqual(sorted(ids), sorted(self.task_ids(a)))
        pool = HttpPool(b, timeout=dl(30))
        try:
            hists = pool.map(lambda p, tid: p.request("GET", f"/api/v1/tasks/{tid}/history"), ids)
        finally:
            pool.close()
        dots = []
        for tid, (status, body) in zip(ids, hists):
            self.assertEqual(status, 200, body)
            dots += [(h["peer"], h["seq"]) for h in body["history"]]
        self.assertEqual(len(dots), len(set(dots)), "duplicated (peer, seq) in B's histories")
        self.assertEqual(sorted(s for _, s in dots), list(range(1, n + 1)))
        self.wait_settled(a, b)

    # 6 -----------------------------------------------------------------------
    def test_6_wrong_secret_gets_nothing(self):
        a, b = self.pair()
        for i in range(3):
            a.create_task(f"secret task {i}")
        wd, _ = self.member_workspace(a.workspace, [a.info["peer_url"]])
        with open(os.path.join(wd.wsp_dir, "project.secret"), "wb") as f:
            f.write(os.urandom(32))
        d = self.daemon(wd)
        self.assertEqual(d.info["project_id"], a.info["project_id"])
        # The listener refuses D's signaling hello (SPEC 7.1: auth_failed,
        # close 4001); D logs the refusal.
        self.wait_log(d, "auth_failed")
        self.assertEqual(self.task_ids(d), [])
        self.assertEqual(self.clock(d), {})
        self.assertFalse(any(p["state"] == "connected" for p in self.peers(d)), self.peers(d))
        self.assertIsNone(self.peer_entry(a, d.peer_id), self.peers(a))
        self.assertIsNone(self.peer_entry(b, d.peer_id), self.peers(b))
        # A stays healthy and keeps syncing with B.
        self.assertEqual(a.request("GET", "/api/v1/health")[0], 200)
        t = a.create_task("after the intruder")
        self.wait_task(b, t["id"])
        self.wait_converged(a, b)
        # Still nothing on D after all that.
        self.assertEqual(self.task_ids(d), [])
        self.assertEqual(self.clock(d), {})

    # 7 -----------------------------------------------------------------------
    def test_7_drop_peer(self):
        for offerer in ("A", "B"):
            with self.subTest(offerer=offerer):
                a, b = self.pair(offerer=offerer)
                status, _, _ = a.request("DELETE", f"/api/v1/peers/{b.peer_id}")
                self.assertEqual(status, 204)
                self.wait_log(a, 'msg="peer dropped"')
                self.assertIsNone(self.peer_entry(a, b.peer_id), self.peers(a))
                wait_until(lambda: not self.is_connected(b, a), dl(5), 0.03, what="B sees A gone")
                self.assertEqual(a.request("DELETE", f"/api/v1/peers/{b.peer_id}")[0], 404)

                t = a.create_task("after the drop")
                # Observation window: B must not get it (a dropped peer is
                # refused even when it offers again).
                end = time.monotonic() + dl(1.5)
                while time.monotonic() < end:
                    self.assertEqual(b.request("GET", f"/api/v1/tasks/{t['id']}")[0], 404)
                    self.assertIsNone(self.peer_entry(a, b.peer_id), self.peers(a))
                    time.sleep(0.05)
                self.assertLess(self.clock(b).get(a.peer_id, 0), self.clock(a)[a.peer_id])

    def test_7b_new_connect_after_drop_reestablishes(self):
        # README: `wsp peer drop` stops syncing with a peer "until restart
        # or the next connect". B connects again to A's url;
        # A, the side that dropped, makes a new connect too (to B's own
        # listener, the only other url there is). A has the smaller id, so
        # A is the one that must offer again.
        wa, ida = self.workspace_with_id()
        a = self.daemon(wa, listener=True)
        wb, _ = self.member_workspace(wa, [a.info["peer_url"]], larger_than=ida)
        b = self.daemon(wb, listener=True)
        self.wait_connected(a, b)
        self.assertEqual(a.request("DELETE", f"/api/v1/peers/{b.peer_id}")[0], 204)
        self.wait_log(a, 'msg="peer dropped"')
        wait_until(lambda: not self.is_connected(b, a), dl(5), 0.03, what="B sees A gone")

        r = b.wsp("peer", "connect", a.info["peer_url"])
        self.assertEqual(r.returncode, 0, r.stderr)
        r = a.wsp("peer", "connect", b.info["peer_url"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.wait_log(a, f'connecting to {b.info["peer_url"]}')
        try:
            self.wait_connected(a, b, timeout=RECONNECT_S)
        except AssertionError as e:
            raise AssertionError(f"{e}\nA log:\n{a.log()[-2500:]}\nB log:\n{b.log()[-2500:]}") from None
        t = a.create_task("after reconnect")
        self.wait_task(b, t["id"])

    # 8 -----------------------------------------------------------------------
    def test_8_sigterm_sends_goodbye(self):
        # Both roles: the stopping daemon made the channel (offered) or
        # answered it.
        for offerer in ("A", "B"):
            with self.subTest(stopping_side="offerer" if offerer == "A" else "answerer"):
                self._sigterm_goodbye(offerer)

    def _sigterm_goodbye(self, offerer):
        a, b = self.pair(offerer=offerer)
        t = a.create_task("before stop")
        self.wait_task(b, t["id"])
        t0 = time.monotonic()
        self.assertEqual(a.stop(signal.SIGTERM, timeout=dl(10)), 0, a.log())
        elapsed = time.monotonic() - t0
        self.assertLess(elapsed, 5.0 * SCALE, "SPEC 9: exit within 5 s")
        self.assertFalse(os.path.exists(a.workspace.daemon_json))
        self.wait_log(b, f'msg="peer said shutdown: the daemon is stopping" peer={a.peer_id}')
        wait_until(lambda: not self.is_connected(b, a), dl(5), 0.03, what="B sees A gone")
        p = self.peer_entry(b, a.peer_id)
        self.assertIn("shutdown", p["last_error"] or "", p)
        self.assertIn('msg="stopped cleanly"', a.log())


if __name__ == "__main__":
    reexec_in_netns(__file__)
    unittest.main(verbosity=2)
