"""wsphelper.py -- shared helpers for the integration tests (stdlib only).

What it owns:
  * where the built binaries are: $WSPD and $WSP (meson test sets both),
    else build/src/wspd and build/src/wsp under the repository;
  * Workspace: a temporary project directory made with `wsp init DIR`;
  * Daemon: a real `wspd --workspace DIR --listen 127.0.0.1:0` subprocess,
    started and awaited through its daemon.json, spoken to over HTTP with
    the workspace's bearer token, and stopped with a signal whose exit code
    is returned;
  * run_wsp: the CLI as a subprocess, with a clean WSP_* environment.

Waiting is event-driven with a deadline: start() polls for daemon.json
(written by wspd once it listens) every 20 ms up to `timeout` seconds and
fails at once, with the daemon's log, if the process exits first.

Typical use:

    with Daemon() as d:                      # temp workspace, wsp init, start
        status, headers, body = d.request("POST", "/api/v1/tasks", {"title": "x"})
        r = d.wsp("list", "--json")          # CLI against this workspace
    # leaving the block stops the daemon (SIGTERM) and removes the temp dir
"""

import http.client
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def binary(name):
    """Absolute path of a built binary: $WSPD / $WSP, else build/src/NAME."""
    path = os.environ.get(name.upper()) or os.path.join(REPO, "build", "src", name)
    path = os.path.abspath(path)
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"binary '{path}' not found; build first or set ${name.upper()}")
    return path


def clean_env(extra=None):
    """os.environ without WSP_* variables (they would change the config
    under test), plus EXTRA."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WSP_")}
    env.update(extra or {})
    return env


def run_wsp(*args, cwd=None, env=None, input=None, timeout=30):
    """Runs `wsp ARGS...`; returns subprocess.CompletedProcess (text mode,
    stdout and stderr captured)."""
    return subprocess.run([binary("wsp"), *args], cwd=cwd, env=clean_env(env), input=input,
                          capture_output=True, text=True, timeout=timeout)


class Workspace:
    """A temporary project directory with .workspace/ made by `wsp init`."""

    def __init__(self, init=True, prefix="wsp-it-"):
        self.dir = tempfile.mkdtemp(prefix=prefix)
        self.root = os.path.join(self.dir, ".workspace")
        self.wsp_dir = os.path.join(self.root, ".wsp")
        self.daemon_json = os.path.join(self.wsp_dir, "daemon.json")
        if init:
            r = run_wsp("init", self.dir)
            if r.returncode != 0:
                raise RuntimeError(f"wsp init '{self.dir}' failed ({r.returncode}): {r.stderr}")

    @property
    def token(self):
        with open(os.path.join(self.wsp_dir, "token"), encoding="ascii") as f:
            return f.read().strip()

    def wsp(self, *args, **kw):
        """`wsp --workspace DIR ARGS...`"""
        return run_wsp("--workspace", self.dir, *args, **kw)

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


class DaemonError(RuntimeError):
    pass


class Daemon:
    """A wspd subprocess on a Workspace (a fresh temporary one by default)."""

    def __init__(self, workspace=None, extra_args=(), env=None):
        self.owns_workspace = workspace is None
        self.workspace = workspace or Workspace()
        self.extra_args = list(extra_args)
        self.env = env
        self.proc = None
        self.info = None
        self.log_path = os.path.join(self.workspace.dir, f"wspd-{id(self):x}.log")
        self._log = None

    # -- life cycle ---------------------------------------------------------

    def start(self, extra_args=(), timeout=15.0, command=None):
        """Starts wspd (or COMMAND, an argv that execs it, e.g. `wsp daemon`)
        and waits until its daemon.json names its pid. Returns self."""
        if self.proc is not None and self.proc.poll() is None:
            raise DaemonError("daemon already running")
        argv = command or [binary("wspd"), "--workspace", self.workspace.dir,
                           "--listen", "127.0.0.1:0"]
        argv = [*argv, *self.extra_args, *extra_args]
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, env=clean_env(self.env))
        deadline = time.monotonic() + timeout
        while True:
            info = self._read_info()
            if info is not None and info.get("pid") == self.proc.pid:
                self.info = info
                return self
            if self.proc.poll() is not None:
                self._close_log()
                raise DaemonError(f"wspd exited with {self.proc.returncode} before writing "
                                  f"daemon.json:\n{self.log()}")
            if time.monotonic() > deadline:
                self.proc.kill()
                self.proc.wait()
                self._close_log()
                raise DaemonError(f"wspd wrote no daemon.json within {timeout} s:\n{self.log()}")
            time.sleep(0.02)

    def _close_log(self):
        if self._log is not None:
            self._log.close()
            self._log = None

    def _read_info(self):
        try:
            with open(self.workspace.daemon_json, encoding="utf-8") as f:
                return json.load(f)
        except (OSError, ValueError):
            return None   # absent, or (never, it is atomic) half-written

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Sends SIG and waits; returns the exit code (negative: killed by a
        signal). Raises if it does not exit within TIMEOUT (after killing)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise DaemonError(f"wspd did not exit within {timeout} s of signal {sig}:\n{self.log()}")
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.proc.returncode

    def kill(self):
        """SIGKILL, as a crash would."""
        return self.stop(signal.SIGKILL)

    def log(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        try:
            self.stop()
        finally:
            if self.owns_workspace:
                self.workspace.cleanup()
        return False

    # -- talking to it ------------------------------------------------------

    @property
    def url(self):
        return self.info["url"]

    @property
    def port(self):
        return int(self.url.rsplit(":", 1)[1].split("/")[0])

    @property
    def token(self):
        return self.workspace.token

    @property
    def peer_id(self):
        return self.info.get("peer_id")

    def request(self, method, path, body=None, headers=None, token=True, timeout=30):
        """One HTTP request. BODY: a dict/list (sent as JSON), bytes or str.
        Returns (status, headers as a lower-cased dict, parsed JSON or text;
        None when the body is empty)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            hdrs = {"Host": f"127.0.0.1:{self.port}"}
            if token:
                hdrs["Authorization"] = f"Bearer {self.token}"
            data = None
            if body is not None:
                if isinstance(body, (dict, list)):
                    data = json.dumps(body).encode()
                    hdrs["Content-Type"] = "application/json"
                elif isinstance(body, str):
                    data = body.encode()
                else:
                    data = body
            hdrs.update(headers or {})
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            raw = resp.read()
            rheaders = {k.lower(): v for k, v in resp.getheaders()}
        finally:
            conn.close()
        if not raw:
            return resp.status, rheaders, None
        text = raw.decode("utf-8", errors="replace")
        if "json" in rheaders.get("content-type", "") or text[:1] in "{[":
            try:
                return resp.status, rheaders, json.loads(text)
            except ValueError:
                pass
        return resp.status, rheaders, text

    def wsp(self, *args, **kw):
        """The CLI against this daemon's workspace."""
        return self.workspace.wsp(*args, **kw)

    def create_task(self, title, **fields):
        status, _, task = self.request("POST", "/api/v1/tasks", {"title": title, **fields})
        if status != 201:
            raise DaemonError(f"POST /api/v1/tasks answered {status}: {task}")
        return task


def wait_until(predicate, timeout=5.0, interval=0.02, what="condition"):
    """Polls PREDICATE until it returns a true value (which is returned) or
    TIMEOUT passes (AssertionError naming WHAT)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
