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
import sys
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


# -- peer sync (test_sync) -----------------------------------------------------
# Additions for tests that run several daemons of one project. Nothing above
# depends on them.

import threading          # noqa: E402  (kept next to the helpers that need it)

# Everything on loopback: a peer listener on 127.0.0.1 and ICE pinned to it.
PEER_LISTEN_ARGS = ("--peer-listen", "127.0.0.1:0", "--ice-address", "127.0.0.1")
PEER_ARGS = ("--ice-address", "127.0.0.1")


def config_path(ws):
    return os.path.join(ws.root, "config")


def config_get(ws, section, key):
    """The value of KEY in [SECTION] of WS's .workspace/config, or None."""
    current = None
    with open(config_path(ws), encoding="utf-8") as f:
        for line in f:
            s = line.strip()
            if s.startswith("[") and s.endswith("]"):
                current = s[1:-1].strip()
            elif current == section and "=" in s and not s.startswith(("#", ";")):
                k, v = s.split("=", 1)
                if k.strip() == key:
                    return v.strip()
    return None


def config_set(ws, section, key, value):
    """Sets (VALUE a str) or removes (VALUE None) KEY in [SECTION] of WS's
    .workspace/config, keeping every other line as it is."""
    with open(config_path(ws), encoding="utf-8") as f:
        lines = f.read().splitlines()
    out, current, done, sec_end = [], None, False, None
    for line in lines:
        s = line.strip()
        if s.startswith("[") and s.endswith("]"):
            if current == section:
                sec_end = len(out)
            current = s[1:-1].strip()
        elif current == section and "=" in s and not s.startswith(("#", ";")) \
                and s.split("=", 1)[0].strip() == key:
            if value is not None and not done:
                out.append(f"{key}={value}")
                done = True
            continue
        out.append(line)
    if current == section and sec_end is None:
        sec_end = len(out)
    if value is not None and not done:
        if sec_end is None:
            if out and out[-1].strip():
                out.append("")
            out += [f"[{section}]", f"{key}={value}"]
        else:
            while sec_end > 0 and not out[sec_end - 1].strip():
                sec_end -= 1
            out.insert(sec_end, f"{key}={value}")
    tmp = config_path(ws) + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")
    os.replace(tmp, config_path(ws))


def make_member(src, dst=None, signal_urls=None):
    """Makes workspace DST (a fresh `wsp init` one by default) a member of
    SRC's project: SRC's project id and project.secret, its own identity.
    Must run before DST's daemon first starts (no state.db yet). With
    SIGNAL_URLS (a list), sets [sync] signal_urls. Returns DST."""
    dst = dst or Workspace()
    config_set(dst, "project", "id", config_get(src, "project", "id"))
    shutil.copyfile(os.path.join(src.wsp_dir, "project.secret"),
                    os.path.join(dst.wsp_dir, "project.secret"))
    os.chmod(os.path.join(dst.wsp_dir, "project.secret"), 0o600)
    if signal_urls:
        config_set(dst, "sync", "signal_urls", ",".join(signal_urls))
    return dst


def new_workspace_with_id():
    """A fresh Workspace made with `wsp --json init`; returns (workspace,
    its peer id as init reports it)."""
    ws = Workspace(init=False)
    r = run_wsp("--json", "init", ws.dir)
    if r.returncode != 0:
        ws.cleanup()
        raise RuntimeError(f"wsp init '{ws.dir}' failed ({r.returncode}): {r.stderr}")
    return ws, json.loads(r.stdout)["peer_id"]


class HttpPool:
    """A few keep-alive HTTP connections to one daemon, for bulk writes from
    several threads. request() is thread-safe (one connection per thread)."""

    def __init__(self, daemon, timeout=30):
        self.daemon = daemon
        self.timeout = timeout
        self._local = threading.local()
        self._all = []
        self._lock = threading.Lock()

    def _conn(self):
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", self.daemon.port, timeout=self.timeout)
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def request(self, method, path, body=None):
        """Returns (status, parsed JSON or None). Reconnects once if the
        server closed an idle keep-alive connection."""
        data = json.dumps(body).encode() if body is not None else None
        hdrs = {"Host": f"127.0.0.1:{self.daemon.port}",
                "Authorization": f"Bearer {self.daemon.token}"}
        if data is not None:
            hdrs["Content-Type"] = "application/json"
        for attempt in (0, 1):
            conn = self._conn()
            try:
                conn.request(method, path, body=data, headers=hdrs)
                resp = conn.getresponse()
                raw = resp.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                conn.close()
                self._local.conn = None
                if attempt:
                    raise
        return resp.status, (json.loads(raw) if raw else None)

    def map(self, fn, items, threads=4):
        """Runs FN(self, item) for every item on THREADS threads; returns
        the results in order; re-raises the first exception."""
        items = list(items)
        results = [None] * len(items)
        errors = []
        it = iter(range(len(items)))
        it_lock = threading.Lock()

        def worker():
            while not errors:
                with it_lock:
                    i = next(it, None)
                if i is None:
                    return
                try:
                    results[i] = fn(self, items[i])
                except BaseException as e:   # noqa: BLE001 -- handed to the caller
                    errors.append(e)
                    return

        ts = [threading.Thread(target=worker) for _ in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        if errors:
            raise errors[0]
        return results

    def close(self):
        with self._lock:
            for c in self._all:
                c.close()
            self._all.clear()


# -- network namespace -----------------------------------------------------

NETNS_ENV = "WSP_TEST_NETNS"   # WSP_*: clean_env keeps it from the daemons


def reexec_in_netns(script):
    """Re-executes SCRIPT (the running test module) inside a new network
    namespace where only `lo` exists (and is up), once: `unshare -rn`, or
    `unshare -n` as root. Returns only when that is not possible; the tests
    then run pinned to 127.0.0.1 in the current namespace."""
    if os.environ.get(NETNS_ENV):
        return
    os.environ[NETNS_ENV] = "pinned"        # whatever happens: only once
    name = os.path.basename(script)
    unshare = shutil.which("unshare")
    if unshare is None or shutil.which("ip") is None:
        sys.stderr.write(f"{name}: no unshare/ip: running pinned to 127.0.0.1 only\n")
        return
    flag = "-n" if os.geteuid() == 0 else "-rn"
    try:
        probe = subprocess.run([unshare, flag, "sh", "-c", "ip link set lo up"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10)
    except (OSError, subprocess.SubprocessError):
        probe = None
    if probe is None or probe.returncode != 0:
        sys.stderr.write(f"{name}: `unshare {flag}` is not allowed here: running pinned to 127.0.0.1 only\n")
        return
    os.environ[NETNS_ENV] = "netns"
    sys.stderr.write(f"{name}: re-running in a fresh network namespace (only lo)\n")
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execv(unshare, [unshare, flag, "sh", "-c", 'ip link set lo up && exec "$0" "$@"',
                           sys.executable, os.path.abspath(script), *sys.argv[1:]])
    except OSError:
        os.environ[NETNS_ENV] = "pinned"    # exec failed: run here, pinned


def in_fresh_netns():
    """True inside the namespace reexec_in_netns() made."""
    return os.environ.get(NETNS_ENV) == "netns"
