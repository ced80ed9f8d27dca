#!/usr/bin/env python3
"""`make bench`: the benchmark suite of SPEC section 10.

Prints one line per figure, `bench: NAME VALUE UNIT`. `--only PREFIX` runs
the figures whose names start with PREFIX. Everything talks to loopback only.

Knobs from the environment, for profiling (BENCH_LOG applies to every
daemon the bench starts; the others to the sync figures):
  BENCH_SNAPSHOT=DIR  keep the prepared pair of stores in DIR and reuse it
  BENCH_LOG=debug     the daemons' log level (sync daemons log into their
                      workspaces, the others to stderr)
  BENCH_KEEP=1        keep the temporary workspaces
  BENCH_PERF=FILE     `perf record` daemon B while it syncs
  BENCH_PERF_FILES=1  ... and on until its task files are final
  BENCH_POLL=SECONDS  how often the clocks are compared (default 0.002)
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def log(msg):
    print(f"bench: # {msg}", file=sys.stderr, flush=True)


def figure(name, value, unit):
    print(f"bench: {name} {value} {unit}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_status_mib(pid, key):
    """A kB figure of /proc/PID/status (VmRSS, VmHWM …) in MiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return 0


class Workspace:
    def __init__(self, build, tasks):
        self.build = build
        self.dir = tempfile.mkdtemp(prefix="wsp-bench-")
        self.wsp = os.path.join(build, "src", "wsp")
        self.wspd = os.path.join(build, "src", "wspd")
        subprocess.run([self.wsp, "init", self.dir], check=True, stdout=subprocess.DEVNULL)
        if tasks:
            t0 = time.monotonic()
            subprocess.run([os.path.join(build, "bench", "store-bench"), "fill", self.dir, str(tasks)], check=True)
            log(f"filled {tasks} tasks in {time.monotonic() - t0:.1f} s")
        self.proc = None
        wsdir = os.path.join(self.dir, ".workspace", ".wsp")
        with open(os.path.join(wsdir, "token")) as f:
            self.token = f.read().strip()
        self.info_path = os.path.join(wsdir, "daemon.json")

    def start(self):
        t0 = time.monotonic()
        self.proc = subprocess.Popen([self.wspd, "--workspace", self.dir, "--log-level", os.environ.get("BENCH_LOG", "warning")],
                                     stdout=subprocess.DEVNULL)
        # Await daemon.json, then /health.
        while not os.path.exists(self.info_path):
            if self.proc.poll() is not None:
                raise RuntimeError("wspd exited during start")
            time.sleep(0.001)
        with open(self.info_path) as f:
            self.url = json.load(f)["url"]
        while True:
            try:
                with urllib.request.urlopen(self.url + "/api/v1/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.001)
        return (time.monotonic() - t0) * 1000

    def rss_mib(self):
        return proc_status_mib(self.proc.pid, "VmRSS")

    def request(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Authorization": "Bearer " + self.token,
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read() or b"null")

    def stop(self):
        if self.proc:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=10)
            self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)


def wrk(url, token, seconds=10, script=None):
    cmd = ["wrk", "-t2", "-c32", f"-d{seconds}s", "--latency"]
    if token:
        cmd += ["-H", f"Authorization: Bearer {token}"]
    if script:
        cmd += ["-s", script]
    cmd.append(url)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = None
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    if m:
        v = float(m.group(1))
        p99 = v / 1000 if m.group(2) == "us" else v * 1000 if m.group(2) == "s" else v
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        log(f"wrk {url}: {non2xx.group(1)} non-2xx answers")
    return rps, p99


def nginx_rps(size, seconds):
    d = tempfile.mkdtemp(prefix="wsp-nginx-")
    os.chmod(d, 0o755)            # nginx workers run as an unprivileged user
    port = free_port()
    with open(os.path.join(d, "task.json"), "wb") as f:
        f.write(b"x" * size)
    os.chmod(os.path.join(d, "task.json"), 0o644)
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""
worker_processes 1; daemon off; pid {d}/nginx.pid; error_log {d}/error.log;
events {{ worker_connections 1024; }}
http {{ access_log off; server {{ listen 127.0.0.1:{port}; root {d}; }} }}
""")
    proc = subprocess.Popen(["nginx", "-c", conf, "-p", d], stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.01)
        rps, _ = wrk(f"http://127.0.0.1:{port}/task.json", None, seconds)
        return rps
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(d, ignore_errors=True)


def bench_store(args):
    out = subprocess.run([os.path.join(args.build, "bench", "store-bench"), "apply", "200000"],
                         check=True, capture_output=True, text=True)
    sys.stdout.write(out.stdout)


def bench_http(args):
    ws = Workspace(args.build, 1000)
    try:
        ws.start()
        tasks = ws.request("GET", "/api/v1/tasks?limit=1")["tasks"]
        tid = tasks[0]["id"]
        body = json.dumps(ws.request("GET", f"/api/v1/tasks/{tid}")).encode()
        secs = args.seconds
        rps, p99 = wrk(f"{ws.url}/api/v1/tasks/{tid}", ws.token, secs)
        figure("http.get_task_rps", f"{rps:.0f}", "req/s")
        figure("http.get_task_p99_ms", f"{p99:.2f}", "ms")
        rps, _ = wrk(f"{ws.url}/api/v1/tasks?limit=100", ws.token, secs)
        figure("http.list_rps", f"{rps:.0f}", "req/s")
        script = os.path.join(ws.dir, "post.lua")
        with open(script, "w") as f:
            f.write('wrk.method = "POST"\nwrk.body = \'{"title":"bench task","priority":2}\'\n'
                    'wrk.headers["Content-Type"] = "application/json"\n')
        rps, _ = wrk(f"{ws.url}/api/v1/tasks", ws.token, secs, script)
        figure("http.create_rps", f"{rps:.0f}", "req/s")
        figure("http.nginx_rps", f"{nginx_rps(len(body), secs):.0f}", "req/s")
    finally:
        ws.stop()


def bench_cli(args):
    ws = Workspace(args.build, 10000)
    try:
        ws.start()
        times = []
        for _ in range(30):
            t0 = time.monotonic()
            subprocess.run([ws.wsp, "--workspace", ws.dir, "list"], check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            times.append((time.monotonic() - t0) * 1000)
        figure("cli.list_10k_ms", f"{statistics.median(times):.1f}", "ms")
    finally:
        ws.stop()


def wait_reconciled(ws, log_path, timeout=600):
    """Waits for the mirror's "reconciled task files" log line; returns its ms."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(log_path) as f:
            m = re.search(r'msg="reconciled task files" files=(\d+) changed=(\d+) ms=([\d.]+)', f.read())
        if m:
            return float(m.group(3)), int(m.group(1)), int(m.group(2))
        time.sleep(0.05)
    raise RuntimeError("the mirror did not finish its reconcile")


def first_start(ws):
    """Starts once with info logs and waits until every task file is written."""
    log_path = os.path.join(ws.dir, "first.log")
    with open(log_path, "w") as logf:
        proc = subprocess.Popen([ws.wspd, "--workspace", ws.dir, "--log-level", "info"],
                                stdout=subprocess.DEVNULL, stderr=logf)
    try:
        ms, files, changed = wait_reconciled(ws, log_path)
        log(f"first start wrote the task files in {ms:.0f} ms")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def bench_start(args):
    ws = Workspace(args.build, 100000)
    try:
        first_start(ws)
        times = []
        rss = 0
        for _ in range(5):
            times.append(ws.start())
            # Touch the data the way a user would: a list and a get.
            page = ws.request("GET", "/api/v1/tasks?limit=100")
            ws.request("GET", "/api/v1/tasks/" + page["tasks"][0]["id"])
            rss = max(rss, ws.rss_mib())
            ws.proc.send_signal(signal.SIGTERM)
            ws.proc.wait(timeout=10)
            ws.proc = None
        figure("start.cold_100k_ms", f"{statistics.median(times):.0f}", "ms")
        figure("mem.rss_100k_mib", f"{rss:.1f}", "MiB")
    finally:
        ws.stop()


def bench_search(args):
    exe = os.path.join(args.build, "bench", "search-bench")
    d = tempfile.mkdtemp(prefix="wsp-search-")
    try:
        db = os.path.join(d, "search.db")
        out = subprocess.run([exe, "--db", db], check=True, capture_output=True, text=True)
        for line in out.stdout.splitlines():
            if line.startswith("bench: "):
                print(line, flush=True)
        if shutil.which("rg"):
            bench_rg(db, os.path.join(d, "files"))
    finally:
        shutil.rmtree(d, ignore_errors=True)


def bench_rg(db, files):
    """ripgrep -l -w over the same tasks written as files, for words of the
    same frequency classes as search-bench's queries."""
    import collections
    import sqlite3
    os.makedirs(files)
    freq = collections.Counter()
    con = sqlite3.connect(db)
    for n, (tid, js) in enumerate(con.execute("SELECT id, json FROM tasks WHERE live = 1")):
        t = json.loads(js)
        text = t["title"] + "\n" + t["body"]
        with open(os.path.join(files, tid + ".md"), "w") as f:
            f.write(text)
        if n < 5000:
            freq.update(set(re.findall(r"\w+", text)))
    con.close()
    ranked = [w for w, _ in freq.most_common()]
    rare = [w for w, c in freq.items() if c == 5] or ranked[-1:]
    queries = {"rare": [rare[0]], "common": [ranked[0]], "and": [ranked[300], ranked[2000]]}
    for kind, words in queries.items():
        times = []
        for _ in range(3):
            t0 = time.monotonic()
            hits = subprocess.run(["rg", "-l", "-w", words[0], files], capture_output=True, text=True).stdout.split()
            for w in words[1:]:
                if hits:
                    hits = subprocess.run(["rg", "-l", "-w", w, *hits], capture_output=True, text=True).stdout.split()
            times.append((time.monotonic() - t0) * 1000)
        figure(f"search.rg_ms.{kind}", f"{statistics.median(times):.0f}", "ms")


def bench_watch(args):
    ws = Workspace(args.build, 0)
    try:
        ws.start()
        t = ws.request("POST", "/api/v1/tasks", {"title": "watch me"})
        path = os.path.join(ws.dir, ".workspace", "tasks", t["id"] + ".md")
        while not os.path.exists(path):
            time.sleep(0.001)
        times = []
        for i in range(200):
            with open(path) as f:
                text = f.read()
            title = f"edit {i}"
            text = re.sub(r"^title: .*$", "title: " + title, text, flags=re.M)
            tmp = path + ".tmp"
            with open(tmp, "w") as f:
                f.write(text)
            t0 = time.monotonic()
            os.rename(tmp, path)
            while ws.request("GET", f"/api/v1/tasks/{t['id']}")["title"] != title:
                time.sleep(0.0005)
            times.append((time.monotonic() - t0) * 1000)
        times.sort()
        figure("watch.visible_p50_ms", f"{times[len(times) // 2]:.1f}", "ms")
        figure("watch.visible_p99_ms", f"{times[int(len(times) * 0.99) - 1]:.1f}", "ms")

        stage = os.path.join(ws.dir, "stage")
        os.makedirs(stage)
        n = 10000
        for i in range(n):
            with open(os.path.join(stage, f"bulk-{i}.md"), "w") as f:
                f.write(f"---\ntitle: Bulk {i}\nlabels: [bulk]\n---\nBody {i}\n")
        tasks = os.path.join(ws.dir, ".workspace", "tasks")
        t0 = time.monotonic()
        for name in os.listdir(stage):
            os.rename(os.path.join(stage, name), os.path.join(tasks, name))
        while True:
            page = ws.request("GET", "/api/v1/tasks?label=bulk&limit=1000&sort=created")
            if len(page["tasks"]) >= 1000:
                # Count through the metrics gauge (cheap) once the first page is full.
                with urllib.request.urlopen(ws.url + "/metrics", timeout=10) as r:
                    m = re.search(r"^wsp_tasks (\d+)", r.read().decode(), re.M)
                if m and int(m.group(1)) >= n + 1:
                    break
            time.sleep(0.005)
        figure("watch.bulk_10k_ms", f"{(time.monotonic() - t0) * 1000:.0f}", "ms")
    finally:
        ws.stop()


def bench_reconcile(args):
    ws = Workspace(args.build, 100000)
    try:
        first_start(ws)     # writes the 100,000 files and the index
        log_path = os.path.join(ws.dir, "wspd.log")
        with open(log_path, "w") as logf:
            proc = subprocess.Popen([ws.wspd, "--workspace", ws.dir, "--log-level", "info"],
                                    stdout=subprocess.DEVNULL, stderr=logf)
        try:
            ms, files, changed = wait_reconciled(ws, log_path, 120)
            log(f"reconcile: {files} files, {changed} changed")
            figure("watch.reconcile_100k_ms", f"{ms:.0f}", "ms")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
    finally:
        ws.stop()




def prepare_pair(args, a, b, n_tasks, n_edits):
    """B joins A's project with A's tasks (same id and secret, a copy of A's
    store; B keeps its own identity); then each makes n_edits offline."""
    with open(os.path.join(a.dir, ".workspace", "config")) as f:
        pid_line = next(l for l in f if l.startswith("id"))
    cfg = os.path.join(b.dir, ".workspace", "config")
    with open(cfg) as f:
        text = f.read()
    with open(cfg, "w") as f:
        f.write(re.sub(r"^id.*\n", pid_line, text, count=1, flags=re.M))
    for name in ("project.secret", "state.db") if n_tasks else ("project.secret",):
        shutil.copy(os.path.join(a.dir, ".workspace", ".wsp", name), os.path.join(b.dir, ".workspace", ".wsp", name))
    t0 = time.monotonic()
    for ws, seed in ((a, 1), (b, 2)):
        if n_edits:
            subprocess.run([os.path.join(args.build, "bench", "store-bench"), "edit", ws.dir, str(n_edits),
                            str(n_tasks), str(seed)], check=True)
    if n_edits:
        log(f"{n_edits} offline edits on each side in {time.monotonic() - t0:.1f} s")


def sync_pair(args, n_tasks, n_edits):
    """Two daemons of one project holding the same n_tasks tasks; offline,
    each makes n_edits random edits; then B connects to A. Returns
    (setup_ms, converge_ms, bytes a->b, bytes b->a, peak rss MiB)."""
    # BENCH_SNAPSHOT=DIR keeps the prepared pair (stores, identities) there
    # and reuses it on the next run: for profiling the sync alone.
    snap = os.environ.get("BENCH_SNAPSHOT")
    snap = os.path.join(snap, f"{n_tasks}-{n_edits}") if snap and n_edits else None
    reuse = snap and os.path.isdir(snap)
    a = Workspace(args.build, 0 if reuse else n_tasks)
    b = Workspace(args.build, 0)
    procs = []
    try:
        if reuse:
            for ws, side in ((a, "a"), (b, "b")):
                shutil.rmtree(os.path.join(ws.dir, ".workspace"))
                shutil.copytree(os.path.join(snap, side), os.path.join(ws.dir, ".workspace"))
                with open(os.path.join(ws.dir, ".workspace", ".wsp", "token")) as f:
                    ws.token = f.read().strip()
            log(f"reusing the pair in {snap}")
        else:
            prepare_pair(args, a, b, n_tasks, n_edits)
            if snap:
                for ws, side in ((a, "a"), (b, "b")):
                    shutil.copytree(os.path.join(ws.dir, ".workspace"), os.path.join(snap, side))
        for ws, extra in ((a, ["--peer-listen", "127.0.0.1:0"]), (b, [])):
            log_path = os.path.join(ws.dir, "wspd.log")
            with open(log_path, "w") as logf:
                ws.proc = subprocess.Popen([ws.wspd, "--workspace", ws.dir, "--log-level",
                                            os.environ.get("BENCH_LOG", "info"),
                                            "--ice-address", "127.0.0.1", *extra],
                                           stdout=subprocess.DEVNULL, stderr=logf)
            procs.append(ws.proc)
            wait_reconciled(ws, log_path)   # every task file written: the daemon is idle
            while not os.path.exists(ws.info_path):
                time.sleep(0.001)
            while "WebRTC ready" not in open(log_path).read():   # the DTLS certificate exists
                time.sleep(0.005)
            with open(ws.info_path) as f:
                info = json.load(f)
            ws.url, ws.peer_url, ws.peer_id = info["url"], info.get("peer_url"), info["peer_id"]

        def peer_of(ws, other):
            for p in ws.request("GET", "/api/v1/peers")["peers"]:
                if p["peer_id"] == other.peer_id:
                    return p
            return None

        perf = None
        if os.environ.get("BENCH_PERF"):   # profile B while it syncs
            perf = subprocess.Popen(["perf", "record", "--call-graph", "dwarf,16384", "-F", "1000", "-o", os.environ["BENCH_PERF"], "-p", str(b.proc.pid)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)
        t0 = time.monotonic()
        b.request("POST", "/api/v1/peers", {"url": a.peer_url})
        while True:
            pa, pb = peer_of(a, b), peer_of(b, a)
            if pa and pb and pa["state"] == "connected" and pb["state"] == "connected":
                break
            if time.monotonic() - t0 > 60:
                raise RuntimeError("the peers did not connect")
            time.sleep(0.001)
        t1, wall1 = time.monotonic(), time.time()
        while a.request("GET", "/api/v1/sync")["clock"] != b.request("GET", "/api/v1/sync")["clock"]:
            if time.monotonic() - t1 > 600:
                raise RuntimeError("the peers did not converge")
            time.sleep(float(os.environ.get("BENCH_POLL", "0.002")))
        t2 = time.monotonic()
        if perf and not os.environ.get("BENCH_PERF_FILES"):
            perf.send_signal(signal.SIGINT)
            perf.wait()
            perf = None
        # Identical state, checked (not timed): every task equal.
        for ws in (a, b):
            ws.snapshot = []
            cursor = None
            while True:
                page = ws.request("GET", "/api/v1/tasks?limit=1000" + (f"&cursor={cursor}" if cursor else ""))
                ws.snapshot += page["tasks"]
                cursor = page["next_cursor"]
                if not cursor:
                    break
        if a.snapshot != b.snapshot:
            raise RuntimeError("the replicas differ after sync")
        # The task files follow the store (a catch-up's renders wait for
        # it): when did the last one change? Polled until none has changed
        # for 3 s; the mtimes themselves say when.
        def newest_file():
            newest = 0
            for ws in (a, b):
                for e in os.scandir(os.path.join(ws.dir, ".workspace", "tasks")):
                    try:
                        newest = max(newest, e.stat().st_mtime)
                    except FileNotFoundError:   # a render's temporary file, renamed meanwhile
                        newest = time.time()
            return newest
        while n_tasks and time.time() - newest_file() < 3:
            time.sleep(0.2)
        if perf:
            perf.send_signal(signal.SIGINT)
            perf.wait()
        if n_tasks:
            log(f"task files final {(newest_file() - wall1) * 1000:.0f} ms after the channel opened "
                f"(store converged at {(t2 - t1) * 1000:.0f} ms)")
        pa = peer_of(a, b)
        rss = max(proc_status_mib(p.pid, "VmHWM") for p in procs)
        return (t1 - t0) * 1000, (t2 - t1) * 1000, pa["bytes_sent"], pa["bytes_received"], rss
    finally:
        for ws in (a, b):
            if ws.proc:
                ws.proc.send_signal(signal.SIGTERM)
                ws.proc.wait(timeout=30)
                ws.proc = None
            if os.environ.get("BENCH_KEEP"):
                log(f"kept {ws.dir}")
            else:
                ws.stop()


def bench_sync(args):
    setups = [sync_pair(args, 0, 0)[0] for _ in range(5)]
    log("setup ms, five fresh pairs: " + ", ".join(f"{t:.0f}" for t in setups))
    _, conv, ab, ba, rss = sync_pair(args, 10000, 50000)
    figure("sync.setup_ms", f"{statistics.median(setups):.0f}", "ms")
    figure("sync.converge_ms", f"{conv:.0f}", "ms")
    figure("sync.bytes_a_to_b", f"{ab}", "bytes")
    figure("sync.bytes_b_to_a", f"{ba}", "bytes")
    figure("sync.rss_mib", f"{rss:.1f}", "MiB")


def bench_sync_100k(args):
    _, conv, ab, ba, rss = sync_pair(args, 100000, 500000)
    figure("sync.converge_100k_ms", f"{conv:.0f}", "ms")
    log(f"100k: {ab} bytes a->b, {ba} bytes b->a, peak rss {rss:.1f} MiB")


SUITES = [
    ("store", bench_store),
    ("http", bench_http),
    ("cli", bench_cli),
    ("start", bench_start),
    ("mem", bench_start),
    ("search", bench_search),
    ("watch", bench_watch),
    ("watch.reconcile", bench_reconcile),
    ("sync", bench_sync),
    ("sync.converge_100k", bench_sync_100k),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--only", default="")
    ap.add_argument("--seconds", type=int, default=10)
    args = ap.parse_args()
    args.build = os.path.abspath(args.build)
    done = set()
    for name, fn in SUITES:
        if args.only and not (name.startswith(args.only) or args.only.startswith(name)):
            continue
        if fn in done:
            continue
        done.add(fn)
        fn(args)


if __name__ == "__main__":
    main()
