#!/usr/bin/env python3
"""test_cli.py -- the `wsp` CLI end to end against a real wspd (SPEC 6).

Every command, human and --json output, exit codes (0 ok, 1 failure,
2 usage), the "no daemon" message, `wsp daemon`, a clean SIGTERM, and the
peer commands: `wsp peer`, `wsp sync`, `wsp invite` (its token is decoded
here independently of the C codec) and `wsp join`.

Run: python3 tests/integration/test_cli.py   (env WSPD, WSP: the binaries;
default build/src/wspd and build/src/wsp). Exits non-zero on any failure.
"""

import base64
import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wsphelper import Daemon, Workspace, binary, clean_env, run_wsp, wait_until  # noqa: E402

NO_DAEMON = "no daemon is running for this workspace"
UNKNOWN_ID = "ws-zzzzzzzzzz"
INVITE_HINT = "--peer-listen"
DEAD_URL = "ws://127.0.0.1:1/api/v1/signal"


def msgpack_decode(data, i=0):
    """(value, next offset) of the MessagePack item at DATA[i]: just the
    types a join token uses (maps, arrays, str, bin)."""
    b = data[i]
    if b & 0xf0 == 0x80 or b in (0xde, 0xdf) or b & 0xf0 == 0x90 or b in (0xdc, 0xdd):
        is_map = b & 0xf0 == 0x80 or b in (0xde, 0xdf)
        if b in (0xde, 0xdc):
            n, i = int.from_bytes(data[i + 1:i + 3], "big"), i + 3
        elif b in (0xdf, 0xdd):
            n, i = int.from_bytes(data[i + 1:i + 5], "big"), i + 5
        else:
            n, i = b & 0x0f, i + 1
        if is_map:
            out = {}
            for _ in range(n):
                k, i = msgpack_decode(data, i)
                out[k], i = msgpack_decode(data, i)
            return out, i
        out = []
        for _ in range(n):
            v, i = msgpack_decode(data, i)
            out.append(v)
        return out, i
    if b & 0xe0 == 0xa0:
        n, i = b & 0x1f, i + 1
        return data[i:i + n].decode(), i + n
    sizes = {0xd9: (1, str), 0xda: (2, str), 0xdb: (4, str), 0xc4: (1, bytes), 0xc5: (2, bytes), 0xc6: (4, bytes)}
    if b not in sizes:
        raise AssertionError(f"unexpected MessagePack type 0x{b:02x} in a join token")
    width, kind = sizes[b]
    n, i = int.from_bytes(data[i + 1:i + 1 + width], "big"), i + 1 + width
    raw = data[i:i + n]
    return (raw.decode() if kind is str else raw), i + n


def decode_invite(token):
    """SPEC 6: "wsp1:" + unpadded base64url of {"p", "s", "a"}."""
    assert token.startswith("wsp1:"), token
    b64 = token[5:]
    assert "=" not in b64, token
    raw = base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4))
    value, end = msgpack_decode(raw)
    assert end == len(raw), "trailing bytes after the map"
    return value


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def json_out(r):
    """stdout of a --json run, parsed."""
    try:
        return json.loads(r.stdout)
    except ValueError as e:
        raise AssertionError(f"stdout is not JSON ({e}): {r.stdout!r}; stderr: {r.stderr!r}")


class CliTestCase(unittest.TestCase):
    def assertExit(self, r, code, msg=""):
        self.assertEqual(r.returncode, code,
                         f"{msg} exit {r.returncode}, expected {code}\n"
                         f"  argv: {r.args}\n  stdout: {r.stdout!r}\n  stderr: {r.stderr!r}")


class TestWithoutDaemon(CliTestCase):
    """Commands that need no daemon, and what happens when there is none."""

    def setUp(self):
        self.ws = Workspace()

    def tearDown(self):
        self.ws.cleanup()

    def test_init_creates_workspace(self):
        with tempfile.TemporaryDirectory(prefix="wsp-it-init-") as d:
            target = os.path.join(d, "proj")
            r = run_wsp("init", target)
            self.assertExit(r, 0)
            self.assertIn(os.path.join(target, ".workspace"), r.stdout)
            wsp_dir = os.path.join(target, ".workspace", ".wsp")
            for name, size in (("identity.key", 32), ("project.secret", 32)):
                st = os.stat(os.path.join(wsp_dir, name))
                self.assertEqual(stat.S_IMODE(st.st_mode), 0o600, name)
                self.assertEqual(st.st_size, size, name)
            st = os.stat(os.path.join(wsp_dir, "token"))
            self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
            with open(os.path.join(wsp_dir, ".gitignore")) as f:
                self.assertEqual(f.read().strip(), "*")
            with open(os.path.join(target, ".workspace", "config")) as f:
                config = f.read()
            for needle in ("[project]", "id=", "prefix=ws", "statuses=todo,in_progress,done", "name=proj"):
                self.assertIn(needle, config)
            self.assertTrue(os.path.isdir(os.path.join(target, ".workspace", "tasks")))

            # Twice is a failure, not a usage error.
            r = run_wsp("init", target)
            self.assertExit(r, 1)
            self.assertIn("already exists", r.stderr)

            r = run_wsp("init", "--json", os.path.join(d, "other"))
            self.assertExit(r, 0)
            out = json_out(r)
            self.assertEqual(len(out["project_id"]), 26)
            self.assertEqual(len(out["peer_id"]), 16)

    def test_init_in_cwd(self):
        with tempfile.TemporaryDirectory(prefix="wsp-it-cwd-") as d:
            r = run_wsp("init", cwd=d)
            self.assertExit(r, 0)
            self.assertTrue(os.path.isdir(os.path.join(d, ".workspace", ".wsp")))

    def test_no_daemon_message(self):
        for args in (["list"], ["show", UNKNOWN_ID], ["create", "x"], ["search", "x"],
                     ["list", "--json"], ["close", UNKNOWN_ID]):
            r = self.ws.wsp(*args)
            self.assertExit(r, 1, f"wsp {args}:")
            self.assertIn(NO_DAEMON, r.stderr)
            self.assertIn(self.ws.root, r.stderr)
            self.assertIn("wsp daemon", r.stderr)
            self.assertEqual(r.stdout, "")

    def test_stale_daemon_json(self):
        # A daemon killed with -9 leaves daemon.json behind.
        with open(self.ws.daemon_json, "w") as f:
            json.dump({"pid": 2 ** 22 + 12345, "url": "http://127.0.0.1:9", "peer_id": "0" * 16,
                       "project_id": "a" * 26, "peer_url": None}, f)
        r = self.ws.wsp("list")
        self.assertExit(r, 1)
        self.assertIn(NO_DAEMON, r.stderr)

    def test_doctor_without_daemon(self):
        r = self.ws.wsp("doctor")
        self.assertExit(r, 1)
        self.assertIn(self.ws.root, r.stdout)
        self.assertIn("not running", r.stdout)
        r = self.ws.wsp("doctor", "--json")
        self.assertExit(r, 1)
        out = json_out(r)
        self.assertFalse(out["healthy"])
        self.assertFalse(out["daemon"]["running"])
        self.assertEqual(out["paths"]["workspace"], self.ws.root)

    # -- invite, join ----------------------------------------------------------

    def test_invite_without_peer_listener(self):
        for args in (["invite"], ["invite", "--json"]):
            r = self.ws.wsp(*args)
            self.assertExit(r, 1, f"wsp {args}:")
            self.assertIn(INVITE_HINT, r.stderr)
            self.assertIn("--url", r.stderr)
            self.assertEqual(r.stdout, "")

    def test_invite_with_url_and_join(self):
        r = self.ws.wsp("invite", "--url", DEAD_URL)
        self.assertExit(r, 0)
        token = r.stdout.strip()
        self.assertTrue(token.startswith("wsp1:"), r.stdout)
        self.assertEqual(r.stdout, token + "\n", "stdout holds only the token")
        self.assertNotIn(token, r.stderr)

        with open(os.path.join(self.ws.root, "config")) as f:
            project_id = next(line.split("=", 1)[1].strip() for line in f if line.startswith("id="))
        secret = read_bytes(os.path.join(self.ws.wsp_dir, "project.secret"))
        inv = decode_invite(token)
        self.assertEqual(inv, {"p": project_id, "s": secret, "a": [DEAD_URL]})

        r = self.ws.wsp("invite", "--json", "--url", DEAD_URL, "--url", "wss://example.org:9/api/v1/signal")
        self.assertExit(r, 0)
        out = json_out(r)
        self.assertEqual(out["urls"], [DEAD_URL, "wss://example.org:9/api/v1/signal"])
        self.assertEqual(decode_invite(out["token"])["a"], out["urls"])

        with tempfile.TemporaryDirectory(prefix="wsp-it-join-") as d:
            target = os.path.join(d, "member")
            r = run_wsp("join", token, target)
            self.assertExit(r, 0)
            root = os.path.join(target, ".workspace")
            self.assertIn(f"joined project {project_id} in {root}", r.stdout)
            self.assertIn("wsp", r.stdout.split("start the daemon with:", 1)[1])
            self.assertNotIn(token, r.stdout + r.stderr)
            self.assertEqual(read_bytes(os.path.join(root, ".wsp", "project.secret")), secret)
            st = os.stat(os.path.join(root, ".wsp", "project.secret"))
            self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
            with open(os.path.join(root, "config")) as f:
                config = f.read()
            self.assertIn(f"id={project_id}", config)
            section = config.split("[sync]", 1)[1]
            self.assertIn(f"signal_urls={DEAD_URL}", section)
            # A different peer of the same project.
            self.assertNotEqual(read_bytes(os.path.join(root, ".wsp", "identity.key")),
                                read_bytes(os.path.join(self.ws.wsp_dir, "identity.key")))
            # The daemon accepts what join wrote (doctor checks the config).
            r = run_wsp("--workspace", target, "doctor", "--json")
            self.assertFalse([p for p in json_out(r)["problems"] if "config" in p.get("reason", "")], r.stdout)

            # Into the same directory again: a failure, nothing changed.
            r = run_wsp("join", token, target)
            self.assertExit(r, 1)
            self.assertIn("already exists", r.stderr)
            self.assertEqual(read_bytes(os.path.join(root, ".wsp", "project.secret")), secret)

            # From standard input, in the current directory, with --json.
            other = os.path.join(d, "other")
            os.mkdir(other)
            r = run_wsp("join", "--json", "-", cwd=other, input=token + "\n")
            self.assertExit(r, 0)
            out = json_out(r)
            self.assertEqual(out["workspace"], os.path.join(os.path.realpath(other), ".workspace"))
            self.assertEqual(out["project_id"], project_id)
            self.assertRegex(out["peer_id"], r"^[0-9a-f]{16}$")
            self.assertEqual(out["signal_urls"], [DEAD_URL])

    def test_invite_expands_wildcard_listener(self):
        # A listener on 0.0.0.0 is dialled at this machine's IPv4 addresses
        # (127.0.0.1 when it has none); [::] adds the IPv6 ones.
        r = self.ws.wsp("invite", "--json", "--url", "ws://0.0.0.0:7420/api/v1/signal")
        self.assertExit(r, 0)
        urls = json_out(r)["urls"]
        self.assertTrue(urls)
        self.assertEqual(decode_invite(json_out(r)["token"])["a"], urls)
        for url in urls:
            self.assertRegex(url, r"^ws://\d+\.\d+\.\d+\.\d+:7420/api/v1/signal$")
            self.assertNotIn("0.0.0.0", url)
        self.assertEqual(len(set(urls)), len(urls))
        r = self.ws.wsp("invite", "--json", "--url", "ws://[::]:7420/api/v1/signal")
        self.assertExit(r, 0)
        urls6 = json_out(r)["urls"]
        if urls != ["ws://127.0.0.1:7420/api/v1/signal"]:   # not the no-address fallback
            self.assertEqual(urls6[:len(urls)], urls, "IPv4 first")
        self.assertFalse([u for u in urls6 if "[::]" in u], urls6)

    def test_join_bad_tokens(self):
        with tempfile.TemporaryDirectory(prefix="wsp-it-join-") as d:
            good = self.ws.wsp("invite", "--url", DEAD_URL).stdout.strip()
            for bad in ("garbage", "wsp1:", "wsp1:!!!!", "wsp2:" + good[5:], good[:-3], good + "AA"):
                r = run_wsp("join", bad, os.path.join(d, "x"))
                self.assertExit(r, 2, f"token {bad!r}:")
                self.assertIn("TOKEN", r.stderr)
                self.assertFalse(os.path.exists(os.path.join(d, "x", ".workspace")))

    def test_no_workspace(self):
        with tempfile.TemporaryDirectory(prefix="wsp-it-none-") as d:
            missing = os.path.join(d, "nothing-here")
            r = run_wsp("--workspace", missing, "list")
            self.assertExit(r, 1)
            self.assertIn(missing, r.stderr)
            r = run_wsp("list", env={"WSP_WORKSPACE": missing}, cwd=d)
            self.assertExit(r, 1)
            self.assertIn("WSP_WORKSPACE", r.stderr)

    def test_usage_errors(self):
        cases = [
            [],
            ["frobnicate"],
            ["--frobnicate", "list"],
            ["list", "--frobnicate"],
            ["list", "extra"],
            ["list", "--limit", "abc"],
            ["list", "--limit", "0"],
            ["create"],
            ["create", "a", "b"],
            ["create", "x", "--priority", "7"],
            ["create", "x", "--priority", "high"],
            ["create", "x", "--label"],
            ["show"],
            ["show", "a", "b"],
            ["edit"],
            ["edit", UNKNOWN_ID],                       # nothing to change
            ["edit", UNKNOWN_ID, "--priority", "-1"],
            ["edit", UNKNOWN_ID, "--frob", "x"],
            ["close"],
            ["delete"],
            ["comment"],
            ["comment", UNKNOWN_ID],
            ["comment", UNKNOWN_ID, "a", "b"],
            ["search"],
            ["history"],
            ["doctor", "extra"],
            ["init", "a", "b"],
            ["peer"],
            ["peer", "frobnicate"],
            ["peer", "list", "extra"],
            ["peer", "connect"],
            ["peer", "connect", "http://127.0.0.1:1/"],
            ["peer", "connect", DEAD_URL, "extra"],
            ["peer", "drop"],
            ["peer", "drop", "nothex"],
            ["peer", "drop", "0123456789ABCDEF"],
            ["sync", "extra"],
            ["invite", "extra"],
            ["invite", "--url", "http://127.0.0.1:1/"],
            ["join"],
            ["join", "garbage"],
            ["join", "wsp1:AAAA"],
            ["join", "a", "b", "c"],
            ["--workspace"],
        ]
        for args in cases:
            r = self.ws.wsp(*args) if args[:1] != ["--workspace"] else run_wsp(*args)
            self.assertExit(r, 2, f"wsp {args}:")
            self.assertNotEqual(r.stderr.strip(), "", f"wsp {args}: no reason on stderr")
            self.assertIn("usage", r.stderr.lower(), f"wsp {args}: no usage on stderr")
            self.assertEqual(r.stdout, "", f"wsp {args}: stdout not empty")

    def test_help_and_version(self):
        r = run_wsp("--help")
        self.assertExit(r, 0)
        for cmd in ("init", "daemon", "create", "list", "show", "edit", "close", "delete",
                    "comment", "search", "history", "doctor", "peer connect URL", "drop PEER_ID",
                    "sync", "invite", "join TOKEN"):
            self.assertIn(cmd, r.stdout)
        r = run_wsp("create", "--help")
        self.assertExit(r, 0)
        self.assertIn("--label", r.stdout)
        r = run_wsp("--version")
        self.assertExit(r, 0)
        self.assertTrue(r.stdout.startswith("wsp "))


class TestWithDaemon(CliTestCase):
    """One daemon for the class; each test makes its own tasks."""

    @classmethod
    def setUpClass(cls):
        cls.d = Daemon().start()

    @classmethod
    def tearDownClass(cls):
        code = cls.d.stop(signal.SIGTERM)
        cls.d.workspace.cleanup()
        if code != 0:
            raise AssertionError(f"wspd exited with {code} after SIGTERM:\n{cls.d.log()}")

    def wsp(self, *args, **kw):
        return self.d.wsp(*args, **kw)

    def get(self, task_id):
        status, _, body = self.d.request("GET", f"/api/v1/tasks/{task_id}")
        self.assertEqual(status, 200, body)
        return body

    def create(self, *args):
        r = self.wsp("create", "--json", *args)
        self.assertExit(r, 0)
        return json_out(r)

    # -- create -------------------------------------------------------------

    def test_create_human(self):
        dep = self.d.create_task("dependency for create")
        r = self.wsp("create", "Write the manual", "--body", "All of it.\nTwice.", "--status", "in_progress",
                     "--priority", "1", "--assignee", "alice", "--label", "docs", "--label", "big",
                     "--depends-on", dep["id"])
        self.assertExit(r, 0)
        self.assertIn("created ws-", r.stdout)
        self.assertIn("Write the manual", r.stdout)
        task_id = r.stdout.split()[1]
        t = self.get(task_id)
        self.assertEqual(t["title"], "Write the manual")
        self.assertEqual(t["body"], "All of it.\nTwice.")
        self.assertEqual(t["status"], "in_progress")
        self.assertEqual(t["priority"], 1)
        self.assertEqual(t["assignee"], "alice")
        self.assertEqual(t["labels"], ["big", "docs"])
        self.assertEqual(t["depends_on"], [dep["id"]])

    def test_create_json(self):
        t = self.create("Only a title")
        self.assertRegex(t["id"], r"^ws-[a-z2-7]{10}$")
        self.assertEqual(t["title"], "Only a title")
        self.assertEqual(t["body"], "")
        self.assertEqual(t["status"], "todo")
        self.assertEqual(t["priority"], 2)
        self.assertIsNone(t["assignee"])
        self.assertEqual(t["labels"], [])

    def test_create_with_parent_and_due(self):
        parent = self.create("parent task")
        t = self.create("child task", "--parent", parent["id"], "--due", "2031-02-03")
        self.assertEqual(t["parent"], parent["id"])
        self.assertEqual(t["due"], "2031-02-03")

    def test_create_title_after_double_dash(self):
        t = self.create("--", "-starts with a dash")
        self.assertEqual(t["title"], "-starts with a dash")

    def test_create_rejected_by_server(self):
        r = self.wsp("create", "bad due", "--due", "2031-02-30")
        self.assertExit(r, 1)
        self.assertNotEqual(r.stderr.strip(), "")
        self.assertEqual(r.stdout, "")

    # -- list ---------------------------------------------------------------

    def test_list_human_and_json(self):
        label = "lst-" + os.urandom(3).hex()
        a = self.create("alpha listed", "--label", label, "--assignee", "bob", "--priority", "0")
        b = self.create("beta listed", "--label", label)
        r = self.wsp("list", "--label", label)
        self.assertExit(r, 0)
        lines = r.stdout.splitlines()
        header = lines[0].split()
        self.assertEqual(header[:4], ["ID", "STATUS", "PRI", "TITLE"])
        self.assertEqual(len(lines), 3, r.stdout)
        self.assertTrue(lines[1].startswith(a["id"]), r.stdout)   # priority 0 first
        self.assertIn("alpha listed", lines[1])
        self.assertIn("bob", lines[1])
        self.assertIn(label, lines[1])
        self.assertTrue(lines[2].startswith(b["id"]))
        # Columns line up.
        self.assertEqual(lines[1].index("todo"), lines[2].index("todo"))
        self.assertEqual(lines[0].index("STATUS"), lines[1].index("todo"))

        r = self.wsp("list", "--label", label, "--json")
        self.assertExit(r, 0)
        out = json_out(r)
        self.assertEqual([t["id"] for t in out["tasks"]], [a["id"], b["id"]])
        self.assertIn("next_cursor", out)

    def test_list_filters(self):
        label = "flt-" + os.urandom(3).hex()
        blocker = self.create("blocker", "--label", label)
        blocked = self.create("blocked", "--label", label, "--depends-on", blocker["id"], "--assignee", "carol")
        doing = self.create("doing", "--label", label, "--status", "in_progress")

        def ids(*args):
            r = self.wsp("list", "--json", "--label", label, *args)
            self.assertExit(r, 0)
            return {t["id"] for t in json_out(r)["tasks"]}

        self.assertEqual(ids(), {blocker["id"], blocked["id"], doing["id"]})
        self.assertEqual(ids("--status", "in_progress"), {doing["id"]})
        self.assertEqual(ids("--assignee", "carol"), {blocked["id"]})
        self.assertEqual(ids("--ready"), {blocker["id"], doing["id"]})
        self.assertEqual(len(ids("--limit", "1")), 1)
        r = self.wsp("list", "--label", label + "-none")
        self.assertExit(r, 0)
        self.assertIn("no tasks", r.stdout)

    def test_list_from_nested_dir_and_env(self):
        t = self.create("found by discovery")
        nested = os.path.join(self.d.workspace.dir, "src", "deep")
        os.makedirs(nested, exist_ok=True)
        r = run_wsp("list", "--json", "--limit", "1000", cwd=nested)
        self.assertExit(r, 0)
        self.assertIn(t["id"], {x["id"] for x in json_out(r)["tasks"]})
        with tempfile.TemporaryDirectory() as elsewhere:
            r = run_wsp("list", "--json", "--limit", "1000", cwd=elsewhere,
                        env={"WSP_WORKSPACE": self.d.workspace.dir})
            self.assertExit(r, 0)
            self.assertIn(t["id"], {x["id"] for x in json_out(r)["tasks"]})

    # -- show ---------------------------------------------------------------

    def test_show(self):
        t = self.create("shown task", "--body", "the body text", "--label", "x1", "--assignee", "dora")
        self.wsp("comment", t["id"], "a first comment")
        r = self.wsp("show", t["id"])
        self.assertExit(r, 0)
        for needle in (t["id"], "shown task", "the body text", "x1", "dora", "todo",
                       "a first comment", "created", "updated"):
            self.assertIn(needle, r.stdout)
        r = self.wsp("show", t["id"], "--json")
        self.assertExit(r, 0)
        out = json_out(r)
        self.assertEqual(out["id"], t["id"])
        self.assertEqual(out["comments"][0]["body"], "a first comment")
        self.assertEqual(out["conflicts"], [])

    def test_show_unknown(self):
        r = self.wsp("show", UNKNOWN_ID)
        self.assertExit(r, 1)
        self.assertNotEqual(r.stderr.strip(), "")
        self.assertEqual(r.stdout, "")
        r = self.wsp("show", UNKNOWN_ID, "--json")
        self.assertExit(r, 1)

    def test_show_sanitises_terminal_escapes(self):
        t = self.d.create_task("evil \x1b[2Jtitle", body="body \x1b]0;pwned\x07 end")
        r = self.wsp("show", t["id"])
        self.assertExit(r, 0)
        self.assertNotIn("\x1b", r.stdout)
        self.assertNotIn("\x07", r.stdout)
        r = self.wsp("list", "--json", "--limit", "1000")
        self.assertIn("\\u001b", r.stdout)   # --json is the server's JSON as is

    # -- edit, close --------------------------------------------------------

    def test_edit_fields(self):
        t = self.create("to edit", "--assignee", "erin", "--label", "old", "--parent", "ws-aaaaaaaaaa")
        dep = self.create("a dependency")
        r = self.wsp("edit", t["id"], "--title", "edited", "--body", "new body", "--status", "in_progress",
                     "--priority", "4", "--assignee", "", "--add-label", "new", "--remove-label", "old",
                     "--add-dep", dep["id"], "--due", "2030-01-31", "--parent", "")
        self.assertExit(r, 0)
        self.assertIn("updated", r.stdout)
        self.assertIn(t["id"], r.stdout)
        got = self.get(t["id"])
        self.assertEqual(got["title"], "edited")
        self.assertEqual(got["body"], "new body")
        self.assertEqual(got["status"], "in_progress")
        self.assertEqual(got["priority"], 4)
        self.assertIsNone(got["assignee"])
        self.assertIsNone(got["parent"])
        self.assertEqual(got["labels"], ["new"])
        self.assertEqual(got["depends_on"], [dep["id"]])
        self.assertEqual(got["due"], "2030-01-31")

        r = self.wsp("edit", t["id"], "--remove-dep", dep["id"], "--due", "", "--json")
        self.assertExit(r, 0)
        got = self.get(t["id"])
        self.assertEqual(got["depends_on"], [])
        self.assertIsNone(got["due"])

    def test_edit_unknown_and_rejected(self):
        r = self.wsp("edit", UNKNOWN_ID, "--title", "x")
        self.assertExit(r, 1)
        self.assertNotEqual(r.stderr.strip(), "")
        t = self.create("edit rejected")
        r = self.wsp("edit", t["id"], "--status", "")
        self.assertExit(r, 1)
        self.assertEqual(self.get(t["id"])["status"], "todo")

    def test_close(self):
        t = self.create("to close")
        r = self.wsp("close", t["id"])
        self.assertExit(r, 0)
        self.assertIn("closed", r.stdout)
        self.assertEqual(self.get(t["id"])["status"], "done")
        t2 = self.create("to close json")
        r = self.wsp("close", t2["id"], "--json")
        self.assertExit(r, 0)
        self.assertEqual(self.get(t2["id"])["status"], "done")
        r = self.wsp("close", UNKNOWN_ID)
        self.assertExit(r, 1)

    # -- delete -------------------------------------------------------------

    def test_delete(self):
        t = self.create("to delete")
        r = self.wsp("delete", t["id"])
        self.assertExit(r, 0)
        self.assertIn("deleted", r.stdout)
        status, _, _ = self.d.request("GET", f"/api/v1/tasks/{t['id']}")
        self.assertEqual(status, 410)
        r = self.wsp("show", t["id"])
        self.assertExit(r, 1)
        self.assertNotEqual(r.stderr.strip(), "")

        t2 = self.create("to delete json")
        r = self.wsp("delete", t2["id"], "--json")
        self.assertExit(r, 0)
        self.assertEqual(json_out(r), {"id": t2["id"], "deleted": True})
        r = self.wsp("delete", UNKNOWN_ID)
        self.assertExit(r, 1)

    # -- comment ------------------------------------------------------------

    def test_comment(self):
        t = self.create("commented")
        r = self.wsp("comment", t["id"], "first words")
        self.assertExit(r, 0)
        self.assertIn("commented", r.stdout)
        r = self.wsp("comment", t["id"], "-", input="from stdin\nsecond line\n")
        self.assertExit(r, 0)
        r = self.wsp("comment", t["id"], "--", "-5 is a fine comment")
        self.assertExit(r, 0)
        r = self.wsp("comment", "--json", t["id"], "json comment")
        self.assertExit(r, 0)
        bodies = [c["body"] for c in self.get(t["id"])["comments"]]
        self.assertEqual(bodies[0], "first words")
        self.assertIn("from stdin\nsecond line", bodies[1])
        self.assertEqual(bodies[2:], ["-5 is a fine comment", "json comment"])
        r = self.wsp("comment", UNKNOWN_ID, "lost")
        self.assertExit(r, 1)

    # -- search -------------------------------------------------------------

    def test_search(self):
        word = "zebrafish" + os.urandom(3).hex()
        t = self.create(f"about the {word}", "--body", f"a body mentioning {word} twice")
        r = wait_until(lambda: (lambda r: r if t["id"] in r.stdout else None)(self.wsp("search", word)),
                       what="the search hit")
        self.assertExit(r, 0)
        self.assertIn(f"about the {word}", r.stdout)
        r = self.wsp("search", word, "--json")
        self.assertExit(r, 0)
        hits = json_out(r)["hits"]
        self.assertEqual(hits[0]["id"], t["id"])
        for key in ("title", "snippet", "score"):
            self.assertIn(key, hits[0])
        r = self.wsp("search", "nothingmatches" + os.urandom(4).hex())
        self.assertExit(r, 0)
        self.assertIn("no matches", r.stdout)

    # -- history ------------------------------------------------------------

    def test_history(self):
        t = self.create("with history")
        self.wsp("edit", t["id"], "--title", "renamed")
        self.wsp("comment", t["id"], "hi")
        r = self.wsp("history", t["id"])
        self.assertExit(r, 0)
        self.assertIn("task.create", r.stdout)
        self.assertIn("task.set", r.stdout)
        self.assertIn("comment.add", r.stdout)
        self.assertLess(r.stdout.index("task.create"), r.stdout.index("comment.add"))
        r = self.wsp("history", t["id"], "--json")
        self.assertExit(r, 0)
        history = json_out(r)["history"]
        self.assertEqual(history[0]["type"], "task.create")
        for key in ("peer", "seq", "hlc", "type", "data", "at"):
            self.assertIn(key, history[0])
        r = self.wsp("history", UNKNOWN_ID)
        self.assertExit(r, 1)

    # -- peer, sync, invite -------------------------------------------------

    def test_peer_list_and_sync(self):
        r = self.wsp("peer", "list")
        self.assertExit(r, 0)
        self.assertEqual(r.stdout, "no peers\n")
        r = self.wsp("peer", "list", "--json")
        self.assertExit(r, 0)
        out = json_out(r)
        self.assertEqual(set(out), {"peers"})
        self.assertIsInstance(out["peers"], list)

        self.d.create_task("moves the clock")
        r = self.wsp("sync", "--json")
        self.assertExit(r, 0)
        out = json_out(r)
        self.assertEqual(out["peer_id"], self.d.peer_id)
        self.assertGreaterEqual(out["clock"][self.d.peer_id], 1)
        self.assertIsInstance(out["peers"], list)
        r = self.wsp("sync")
        self.assertExit(r, 0)
        self.assertIn(f"peer {self.d.peer_id}", r.stdout)
        self.assertRegex(r.stdout, rf"(?m)^  {self.d.peer_id}: [1-9]\d*$")
        self.assertIn("peers: none", r.stdout)

    def test_peer_drop_and_connect_errors(self):
        r = self.wsp("peer", "drop", "nothex")
        self.assertIn(r.returncode, (1, 2), r)
        self.assertIn("nothex", r.stderr)
        r = self.wsp("peer", "drop", "0123456789abcdef")
        self.assertExit(r, 1)
        self.assertIn("0123456789abcdef", r.stderr)
        r = self.wsp("peer", "connect", "http://127.0.0.1:1/")
        self.assertExit(r, 2)

    def test_invite_without_peer_listener(self):
        r = self.wsp("invite")
        self.assertExit(r, 1)
        self.assertIn(INVITE_HINT, r.stderr)
        self.assertEqual(r.stdout, "")

    # -- doctor -------------------------------------------------------------

    def test_doctor_healthy(self):
        r = self.wsp("doctor")
        self.assertExit(r, 0)
        self.assertIn(self.d.workspace.root, r.stdout)
        self.assertIn(str(self.d.proc.pid), r.stdout)
        self.assertIn("no problems", r.stdout)
        r = self.wsp("doctor", "--json")
        self.assertExit(r, 0)
        out = json_out(r)
        self.assertTrue(out["healthy"])
        self.assertTrue(out["daemon"]["running"])
        self.assertTrue(out["daemon"]["health"])
        self.assertEqual(out["daemon"]["pid"], self.d.proc.pid)
        self.assertEqual(out["problems"], [])

    def test_doctor_reports_bad_task_file(self):
        bad = os.path.join(self.d.workspace.root, "tasks", "ws-badfile222.md")
        with open(bad, "w") as f:
            f.write("---\ntitle: [unclosed\n---\nbody\n")
        try:
            r = wait_until(lambda: (lambda r: r if r.returncode == 1 else None)(self.wsp("doctor")),
                           what="doctor to report the bad file")
            self.assertIn("ws-badfile222", r.stdout)
        finally:
            os.unlink(bad)
        wait_until(lambda: self.wsp("doctor").returncode == 0, what="the problem to clear")


class TestPeerListener(CliTestCase):
    """A daemon with a peer listener: invite names it; a member that joins
    with the token connects on start."""

    def test_invite_names_peer_url_and_join_connects(self):
        a = Daemon(extra_args=["--peer-listen", "127.0.0.1:0"])
        self.addCleanup(a.workspace.cleanup)
        self.addCleanup(a.stop)
        a.start()
        peer_url = a.info.get("peer_url")
        self.assertTrue(peer_url and peer_url.startswith("ws://127.0.0.1:"), a.info)

        r = a.wsp("invite")
        self.assertExit(r, 0)
        token = r.stdout.strip()
        self.assertIn(peer_url, decode_invite(token)["a"])
        r = a.wsp("invite", "--json")
        self.assertExit(r, 0)
        self.assertEqual(json_out(r)["urls"], [peer_url])

        ws = Workspace(init=False)
        self.addCleanup(ws.cleanup)
        r = run_wsp("join", token, ws.dir)
        self.assertExit(r, 0)
        b = Daemon(ws)
        self.addCleanup(b.stop)
        b.start()

        def connected():
            r = b.wsp("peer", "list", "--json")
            self.assertExit(r, 0)
            return [p for p in json_out(r)["peers"]
                    if p["peer_id"] == a.peer_id and p["state"] == "connected"]
        wait_until(connected, timeout=30, what=f"B to connect to A\nB:\n{b.log()}")

        r = b.wsp("peer", "list")
        self.assertExit(r, 0)
        header = r.stdout.splitlines()[0].split()
        self.assertEqual(header[:3], ["PEER", "STATE", "VIA"])
        self.assertIn("RECEIVED", header)
        self.assertIn(a.peer_id, r.stdout)
        self.assertRegex(r.stdout, r"\d+s ago|\dm ago")

        task = a.create_task("reaches the member")
        wait_until(lambda: b.request("GET", "/api/v1/tasks/" + task["id"])[0] == 200, timeout=30,
                   what="the task to reach B")
        r = b.wsp("sync")
        self.assertExit(r, 0)
        self.assertIn(a.peer_id, r.stdout)

        r = b.wsp("peer", "drop", a.peer_id)
        self.assertExit(r, 0)
        self.assertEqual(r.stdout, f"dropped {a.peer_id}\n")


class TestDaemonLifecycle(CliTestCase):
    def test_wsp_daemon_execs_wspd_and_sigterm_exits_0(self):
        ws = Workspace()
        daemons = []
        try:
            # `wsp daemon` execs wspd in place, so the pid is the same.
            d = Daemon(ws)
            daemons.append(d)
            d.start(command=[binary("wsp"), "--workspace", ws.dir, "daemon", "--listen", "127.0.0.1:0"])
            t = d.create_task("made while running")
            r = ws.wsp("list", "--json")
            self.assertExit(r, 0)
            self.assertIn(t["id"], {x["id"] for x in json_out(r)["tasks"]})

            # A second daemon on the same workspace is refused, naming the first.
            r = subprocess.run([binary("wsp"), "--workspace", ws.dir, "daemon", "--listen", "127.0.0.1:0"],
                               capture_output=True, text=True, timeout=30, env=clean_env())
            self.assertNotEqual(r.returncode, 0)
            self.assertIn(str(d.proc.pid), r.stderr)

            code = d.stop(signal.SIGTERM)
            self.assertEqual(code, 0, d.log())
            self.assertFalse(os.path.exists(ws.daemon_json), "daemon.json left after SIGTERM")
            r = ws.wsp("list")
            self.assertExit(r, 1)
            self.assertIn(NO_DAEMON, r.stderr)

            # Restart: the task is still there.
            d2 = Daemon(ws)
            daemons.append(d2)
            d2.start()
            r = ws.wsp("show", t["id"])
            self.assertExit(r, 0)
            self.assertIn("made while running", r.stdout)
            self.assertEqual(d2.stop(signal.SIGTERM), 0, d2.log())
        finally:
            for d in daemons:
                if d.proc is not None and d.proc.poll() is None:
                    d.kill()
            ws.cleanup()


if __name__ == "__main__":
    result = unittest.main(verbosity=2, exit=False).result
    total = result.testsRun
    bad = len(result.failures) + len(result.errors)
    print(f"\ntest_cli: {total - bad - len(result.skipped)} passed, {bad} failed, "
          f"{len(result.skipped)} skipped, {total} total")
    sys.exit(0 if result.wasSuccessful() else 1)
