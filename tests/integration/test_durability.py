"""Durability and lifecycle of the real wspd (SPEC 9): acknowledged writes
survive kill -9, restarts need no repair, SIGTERM/SIGINT exit 0 quickly,
one daemon per workspace, clear start-up errors."""

import os
import signal
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wsphelper import Daemon, DaemonError, Workspace, run_wsp  # noqa: E402


class Durability(unittest.TestCase):
    def test_kill9_loses_no_acknowledged_write(self):
        ws = Workspace()
        try:
            d = Daemon(ws).start()
            acked = []
            lock = threading.Lock()
            stop = threading.Event()
            halfway = threading.Event()

            def writer(n):
                i = 0
                while not stop.is_set():
                    try:
                        status, _, body = d.request("POST", "/api/v1/tasks",
                                                    {"title": f"w{n}-{i}", "labels": ["k9"]}, timeout=5)
                    except OSError:
                        return          # the daemon is gone: stop
                    if status == 201:
                        with lock:
                            acked.append(body["id"])
                            if len(acked) >= 150:
                                halfway.set()
                    i += 1

            threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
            for t in threads:
                t.start()
            self.assertTrue(halfway.wait(60), "writers made no progress")
            d.kill()                     # mid-way, writes in flight
            stop.set()
            for t in threads:
                t.join(30)
            self.assertGreaterEqual(len(acked), 150)

            d2 = Daemon(ws).start()
            try:
                for tid in acked:
                    status, _, body = d2.request("GET", f"/api/v1/tasks/{tid}")
                    self.assertEqual(status, 200, f"acknowledged task {tid} lost after kill -9")
                    self.assertEqual(body["labels"], ["k9"])
                # The restarted daemon keeps working and its ids continue.
                status, _, _ = d2.request("POST", "/api/v1/tasks", {"title": "after crash"})
                self.assertEqual(status, 201)
                status, _, page = d2.request("GET", "/api/v1/tasks?label=k9&limit=1000")
                self.assertEqual(status, 200)
                self.assertGreaterEqual(len(page["tasks"]), len(acked))
            finally:
                self.assertEqual(d2.stop(), 0)
        finally:
            ws.cleanup()

    def test_sigterm_and_sigint_exit_zero_quickly(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            with self.subTest(sig=sig):
                ws = Workspace()
                try:
                    d = Daemon(ws).start()
                    d.create_task("before stop")
                    t0 = time.monotonic()
                    self.assertEqual(d.stop(sig), 0, d.log())
                    self.assertLess(time.monotonic() - t0, 5.0)
                    self.assertFalse(os.path.exists(ws.daemon_json), "daemon.json left behind")
                    d = Daemon(ws).start()
                    status, _, page = d.request("GET", "/api/v1/tasks")
                    self.assertEqual([t["title"] for t in page["tasks"]], ["before stop"])
                    self.assertEqual(d.stop(), 0)
                finally:
                    ws.cleanup()

    def test_second_daemon_refused_naming_pid(self):
        ws = Workspace()
        try:
            with Daemon(ws) as d:
                second = Daemon(ws)
                with self.assertRaises(DaemonError) as cm:
                    second.start(timeout=10)
                self.assertIn(str(d.proc.pid), str(cm.exception))
                # The first is unharmed.
                status, _, _ = d.request("GET", "/api/v1/health", token=False)
                self.assertEqual(status, 200)
        finally:
            ws.cleanup()

    def test_bad_config_value_names_key(self):
        ws = Workspace()
        try:
            with open(os.path.join(ws.root, "config"), "a") as f:
                f.write("\n[daemon]\nlog_level = loud\n")
            d = Daemon(ws)
            with self.assertRaises(DaemonError) as cm:
                d.start(timeout=10)
            self.assertIn("log_level", str(cm.exception))
        finally:
            ws.cleanup()

    def test_no_workspace_is_a_clear_error(self):
        empty = Workspace(init=False)
        try:
            d = Daemon(empty)
            with self.assertRaises(DaemonError) as cm:
                d.start(timeout=10)
            self.assertIn("wsp init", str(cm.exception))
        finally:
            empty.cleanup()


if __name__ == "__main__":
    unittest.main(verbosity=2)
