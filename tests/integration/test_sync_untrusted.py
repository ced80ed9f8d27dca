"""test_sync_untrusted.py -- peer sync against untrusted peers (SPEC 7, 9).

A real daemon A (signaling listener on, ICE pinned to 127.0.0.1) and an
honest daemon B of the same project connected to it. A scripted peer,
tests/tools/wsp-rogue-peer ($WSP_ROGUE), joins A's listener with a fresh
identity and, once the channel is up, behaves well or badly:

  honest        its signed one-op run is acked; the task shows on A (and B)
  tampered      a byte of the op body flipped after signing: err bad_run,
                nothing kept, the drop logged
  wrong-author  a run claiming another author's pk, signed by the rogue:
                err bad_run
  malformed     bytes that are not MessagePack: err bad_message
  oversize      a z frame declaring 1,000,000 bytes: err too_large
  unauth-ops    ops right after hello, before auth: err not_authenticated
  bad-auth      auth whose mac is of another text: err auth_failed
  wrong-secret  the signaling hello is refused (auth_failed, close 4001)

After each misbehaving peer, A has changed nothing (same vector clock),
answers /health, and still syncs new work with B: a bad peer drops only
itself.

Network rule: loopback only. When `unshare -rn` works, the module
re-executes itself inside a fresh network namespace with only `lo` up (as
tests/unit/rtc-test.c does), so nothing could leave the machine even if ICE
pinning broke; otherwise it runs on the host, pinned to 127.0.0.1.

The err must arrive every time. (It used to be lost about one run in
eight: the daemon closed the channel in the same main-loop turn as it sent
the err, and with GStreamer 1.22 webrtcbin a message sent right before a
close is sometimes dropped. The daemon now waits for the peer's close after
its err.) A lost err makes the rogue exit 3 ("closed-without-err"), and the
test fails, printing the daemon's own record of the code (last_error).

Waits are event-driven with deadlines (polling the API); no fixed sleeps.
"""

import os
import shutil
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from wsphelper import REPO, Daemon, Workspace, in_fresh_netns, reexec_in_netns, wait_until  # noqa: E402

if __name__ == "__main__":
    reexec_in_netns(__file__)

LOOPBACK = "127.0.0.1"
ROGUE_TIMEOUT_MS = 30000       # the rogue's own deadline (ASan builds are slower)
SYNC_TIMEOUT = 20.0            # seconds for a task to reach the other daemon
ATTEMPTS = 1                   # the err must arrive every time (see above)


def rogue_binary():
    path = os.environ.get("WSP_ROGUE") or os.path.join(REPO, "build", "tests", "tools", "wsp-rogue-peer")
    path = os.path.abspath(path)
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"rogue peer '{path}' not found; build first or set $WSP_ROGUE")
    return path


class RogueResult:
    """One run of wsp-rogue-peer: exit code, its stdout facts, stderr."""

    def __init__(self, proc):
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.lines = [ln.strip() for ln in proc.stdout.splitlines() if ln.strip()]

    def value(self, key):
        """The rest of the first line starting with KEY (e.g. "peer"), or None."""
        for ln in self.lines:
            if ln == key or ln.startswith(key + " "):
                return ln[len(key):].strip()
        return None

    @property
    def peer(self):
        return self.value("peer")

    def __str__(self):
        return f"rc={self.rc}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"


class UntrustedPeers(unittest.TestCase):
    a = b = None
    ws_a = ws_b = None

    # -- fixture --------------------------------------------------------------

    @classmethod
    def setUpClass(cls):
        cls.rogue = rogue_binary()
        cls.ws_a = Workspace(prefix="wsp-untrusted-a-")
        cls.ws_b = Workspace(prefix="wsp-untrusted-b-")
        try:
            cls._join_project(cls.ws_b, cls.ws_a)
            cls.a = Daemon(cls.ws_a, extra_args=["--peer-listen", f"{LOOPBACK}:0",
                                                 "--ice-address", LOOPBACK]).start()
            cls.b = Daemon(cls.ws_b, extra_args=["--ice-address", LOOPBACK]).start()
            cls.peer_url = cls.a.info.get("peer_url")
            assert cls.peer_url and cls.peer_url.startswith("ws://"), cls.a.info
            status, _, body = cls.b.request("POST", "/api/v1/peers", {"url": cls.peer_url})
            assert status in (200, 201, 202), (status, body)
            wait_until(lambda: cls._peer_state(cls.a, cls.b.peer_id) == "connected"
                       and cls._peer_state(cls.b, cls.a.peer_id) == "connected",
                       timeout=SYNC_TIMEOUT, what="A and B connected")
        except BaseException:
            cls._teardown()
            raise

    @classmethod
    def tearDownClass(cls):
        problems = cls._teardown()
        # Untrusted input never crashes the daemon (SPEC 9): both exit 0 on
        # SIGTERM, which under ASan/UBSan also means no sanitizer report.
        assert not problems, "\n\n".join(problems)

    @classmethod
    def _teardown(cls):
        problems = []
        for name, d in (("B", cls.b), ("A", cls.a)):
            if d is None:
                continue
            try:
                rc = d.stop()
                if rc != 0:
                    problems.append(f"daemon {name} exited with {rc}:\n{d.log()}")
            except Exception as e:  # keep cleaning up; report
                problems.append(f"stopping daemon {name} failed: {e}")
        for ws in (cls.ws_b, cls.ws_a):
            if ws is not None:
                ws.cleanup()
        return problems

    @staticmethod
    def _project_id(ws):
        with open(os.path.join(ws.root, "config"), encoding="utf-8") as f:
            in_project = False
            for line in f:
                s = line.strip()
                if s.startswith("["):
                    in_project = s == "[project]"
                elif in_project and s.split("=", 1)[0].strip() == "id":
                    return s.split("=", 1)[1].strip()
        raise AssertionError(f"no [project] id in {ws.root}/config")

    @classmethod
    def _join_project(cls, member, owner):
        """Makes MEMBER (never started yet) a member of OWNER's project: its
        [project] id line and its project.secret become OWNER's."""
        pid = cls._project_id(owner)
        path = os.path.join(member.root, "config")
        with open(path, encoding="utf-8") as f:
            lines = f.readlines()
        out, in_project = [], False
        for line in lines:
            s = line.strip()
            if s.startswith("["):
                in_project = s == "[project]"
            elif in_project and s.split("=", 1)[0].strip() == "id":
                line = f"id={pid}\n"
            out.append(line)
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(out)
        shutil.copyfile(os.path.join(owner.wsp_dir, "project.secret"),
                        os.path.join(member.wsp_dir, "project.secret"))
        assert cls._project_id(member) == pid

    # -- reading the daemons ----------------------------------------------------

    @staticmethod
    def _peers(d):
        status, _, body = d.request("GET", "/api/v1/peers")
        assert status == 200, (status, body)
        return body["peers"]

    @classmethod
    def _peer(cls, d, peer_id):
        for p in cls._peers(d):
            if p.get("peer_id") == peer_id:
                return p
        return None

    @classmethod
    def _peer_state(cls, d, peer_id):
        p = cls._peer(d, peer_id)
        return p and p.get("state")

    @staticmethod
    def _clock(d):
        status, _, body = d.request("GET", "/api/v1/sync")
        assert status == 200, (status, body)
        return body["clock"]

    @staticmethod
    def _task_status(d, task_id):
        status, _, body = d.request("GET", f"/api/v1/tasks/{task_id}")
        return status, body

    def _assert_healthy(self):
        status, _, body = self.a.request("GET", "/api/v1/health", token=False)
        self.assertEqual(status, 200, body)
        self.assertEqual(body.get("status"), "ok", body)
        self.assertIsNone(self.a.proc.poll(), "daemon A exited:\n" + self.a.log())

    def _assert_syncs_with_b(self, label):
        """A new task on A reaches B, and one on B reaches A."""
        t = self.a.create_task(f"after {label}: A to B")
        wait_until(lambda: self._task_status(self.b, t["id"])[0] == 200, timeout=SYNC_TIMEOUT,
                   what=f"A's task {t['id']} on B after {label}")
        u = self.b.create_task(f"after {label}: B to A")
        wait_until(lambda: self._task_status(self.a, u["id"])[0] == 200, timeout=SYNC_TIMEOUT,
                   what=f"B's task {u['id']} on A after {label}")
        self.assertEqual(self._peer_state(self.a, self.b.peer_id), "connected")

    def _settled_clock(self):
        """A's clock once A and B agree (nothing still in flight)."""
        def agree():
            ca, cb = self._clock(self.a), self._clock(self.b)
            return [ca] if ca == cb else None   # truthy even for an empty clock
        return wait_until(agree, timeout=SYNC_TIMEOUT, what="A and B at the same clock")[0]

    # -- running the rogue ------------------------------------------------------

    def _run_rogue(self, mode, role="any", secret_file=None):
        argv = [self.rogue, "--url", self.peer_url, "--project", self._project_id(self.ws_a),
                "--secret-file", secret_file or os.path.join(self.ws_a.wsp_dir, "project.secret"),
                "--ice-address", LOOPBACK, "--mode", mode, "--timeout-ms", str(ROGUE_TIMEOUT_MS)]
        if role != "any":
            argv += ["--role", role, "--listener-id", self.a.peer_id]
        proc = subprocess.run(argv, capture_output=True, text=True,
                              timeout=ROGUE_TIMEOUT_MS / 1000 + 30)
        r = RogueResult(proc)
        self.assertIsNotNone(r.peer, f"the rogue printed no peer id\n{r}")
        if role != "any" and r.value("role") is not None:
            self.assertEqual(r.value("role"), role, str(r))
        return r

    def _expect_err(self, mode, code, role="any"):
        """Runs the rogue in MODE; the daemon's err CODE must reach it
        before the close. Returns that run's result."""
        for attempt in range(1, ATTEMPTS + 1):
            r = self._run_rogue(mode, role)
            if r.rc == 3:
                # The daemon closed on us but its err was lost in transit:
                # say which code it decided, then fail below.
                def last_error():
                    p = self._peer(self.a, r.peer)
                    return p and p.get("last_error")
                err = wait_until(last_error, timeout=5, what=f"A's last_error for {r.peer}")
                self.assertTrue(err.startswith(code + ":"), f"A closed with {err!r}, expected {code}\n{r}")
                print(f"\n[{mode} attempt {attempt}] A closed with '{err}' but its err never reached "
                      f"the peer (lost in webrtcbin's close)", file=sys.stderr)
                continue
            self.assertEqual(r.rc, 0, f"mode {mode}:\n{r}")
            self.assertIn(f"err {code}", r.lines, str(r))
            self.assertIn("closed", r.lines, f"A did not close the channel after err {code}\n{r}")
            self.assertLess(r.lines.index(f"err {code}"), r.lines.index("closed"), str(r))
            return r
        self.fail(f"mode {mode}: A's err {code} never reached the peer in {ATTEMPTS} attempts")

    def _misbehave(self, mode, code, role="any"):
        """The common shape: A's state is unchanged, A is healthy, the rogue
        is not connected, and A still syncs with B."""
        before = self._settled_clock()
        r = self._expect_err(mode, code, role)
        self.assertEqual(self._clock(self.a), before, f"A's clock changed after {mode}\n{r}")
        if r.value("task"):
            self.assertEqual(self._task_status(self.a, r.value("task"))[0], 404,
                             f"the {mode} task was applied on A")
        self.assertNotEqual(self._peer_state(self.a, r.peer), "connected")
        self._assert_healthy()
        self._assert_syncs_with_b(mode)
        return r

    # -- tests ------------------------------------------------------------------

    def test_honest_peer_syncs_both_roles(self):
        for role in ("offerer", "answerer"):
            with self.subTest(role=role):
                r = self._run_rogue("honest", role)
                self.assertEqual(r.rc, 0, str(r))
                self.assertIn("authenticated", r.lines, str(r))
                self.assertIn("ack ok", r.lines, str(r))
                self.assertEqual(r.value("listener"), self.a.peer_id, str(r))
                task_id = r.value("task")
                status, task = self._task_status(self.a, task_id)
                self.assertEqual(status, 200, task)
                self.assertEqual(task["title"], "Rogue honest task")
                self.assertEqual(task["created_by"], r.peer)
                status, _, body = self.a.request("GET", "/api/v1/tasks")
                self.assertEqual(status, 200, body)
                self.assertIn(task_id, [t["id"] for t in body["tasks"]])
                self.assertGreaterEqual(self._clock(self.a).get(r.peer, 0), 1)
                # A relays another author's ops to B (runs end at the signed head).
                wait_until(lambda: self._task_status(self.b, task_id)[0] == 200, timeout=SYNC_TIMEOUT,
                           what=f"the rogue's task {task_id} relayed to B")
        self._assert_healthy()

    def test_tampered_run_is_dropped_and_logged(self):
        for role in ("answerer", "offerer"):
            with self.subTest(role=role):
                r = self._misbehave("tampered", "bad_run", role)
                self.assertNotIn(r.peer, self._clock(self.a))
                # The drop is logged with the peer as its own field.
                wait_until(lambda: any("dropped a run that failed verification" in ln and r.peer in ln
                                       for ln in self.a.log().splitlines()),
                           timeout=5, what=f"A's log line about the run dropped from {r.peer}")
                self.assertEqual(self._task_status(self.b, r.value("task"))[0], 404)

    def test_wrong_author_run(self):
        r = self._misbehave("wrong-author", "bad_run", "offerer")
        claimed = r.value("claimed-author")
        self.assertTrue(claimed and claimed != r.peer, str(r))
        self.assertNotIn(claimed, self._clock(self.a))

    def test_malformed_message(self):
        self._misbehave("malformed", "bad_message", "answerer")

    def test_oversize_frame(self):
        self._misbehave("oversize", "too_large", "offerer")

    def test_ops_before_auth(self):
        self._misbehave("unauth-ops", "not_authenticated", "answerer")

    def test_bad_auth_mac(self):
        self._misbehave("bad-auth", "auth_failed", "offerer")

    def test_wrong_secret_refused_at_signaling(self):
        before = self._settled_clock()
        r = self._run_rogue("wrong-secret")
        self.assertEqual(r.rc, 0, str(r))
        self.assertIn("signal auth_failed", r.lines, str(r))
        self.assertIsNone(r.value("listener"), f"the listener welcomed a wrong secret\n{r}")
        self.assertIsNone(self._peer(self.a, r.peer), f"A lists the refused peer\n{self._peers(self.a)}")
        self.assertEqual(self._clock(self.a), before)
        self._assert_healthy()
        self._assert_syncs_with_b("wrong-secret")


if __name__ == "__main__":
    print(f"network namespace: {'fresh (lo only)' if in_fresh_netns() else 'host'}", file=sys.stderr)
    unittest.main(verbosity=2)
