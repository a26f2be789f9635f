"""Workloads and the measurement of one step.

A workload is a sequence of measured steps on one mounted target. Each step is
one shell command run with cwd = the mount point; for it we record wall time,
the user/sys CPU of the command and everything it waited for (wait4 rusage),
the CPU the file system's own processes used meanwhile (/proc utime+stime), and
for cohfs the server round trips and recalls (round_trips and recalls from
`cohfs stats`, summed over the mounted clients).

"Cold" means: sync; echo 3 > /proc/sys/vm/drop_caches; and for FUSE targets the
client is unmounted and mounted again (servers keep running), then caches are
dropped once more.
"""
import json
import os
import shlex
import signal
import subprocess
import tempfile
import threading
import time

from .util import cpu_seconds, drop_caches, log, reap_zombies

# name -> (steps it produces, description). Order here is the run order.
WORKLOADS = {
    "untar": "untar the kernel tree (tar -xf)",
    "coldread": "sync (+unmount of FUSE clients), then cold find | xargs cat",
    "build": "make tinyconfig && make -j2 in the tree (only with --build)",
    "rm": "rm -rf of the tree",
    "meta": "N empty files in one directory: create, stat warm, stat cold, ls -l cold, unlink",
    "meta4": "the same from 4 threads (no ls)",
    "git": "git clone of a local repository, then git status in the clone",
    "fio": "fio: sequential write (fsync'd), cold sequential read, cold 4 KiB random reads",
    "twoclient": "two clients of one server (ext4: two processes): creates in one directory, "
                 "untar while the other lists, stat of the other's new file (cohfs and ext4 only)",
}
DEFAULT = [w for w in WORKLOADS if w != "build"]

STEP_LABELS = {
    "untar": "untar",
    "sync": "sync (FUSE: unmount, then sync)",
    "coldread": "find \\| xargs cat (cold)",
    "build": "kernel build",
    "rm": "rm -rf tree",
    "create": "create N files",
    "stat-warm": "stat N files, warm",
    "stat-cold": "stat N files, cold",
    "ls-l": "ls -l N files, cold",
    "unlink": "unlink N files",
    "create-4t": "create N files, 4 threads",
    "stat-warm-4t": "stat N warm, 4 threads",
    "stat-cold-4t": "stat N cold, 4 threads",
    "unlink-4t": "unlink N, 4 threads",
    "git-clone": "git clone",
    "git-status": "git status",
    "fio-seqwrite": "seq write + fsync",
    "fio-seqread": "seq read, cold",
    "fio-randread": "4 KiB random read, cold",
    "tc-create-2": "create, 2 clients, one dir",
    "tc-create-1": "create 2N, one client alone",
    "tc-untar-2": "untar while the other lists",
    "tc-untar-1": "untar alone",
    "tc-stat-other": "stat after create, other client",
}
TWO_CLIENT_STEPS = [s for s in STEP_LABELS if s.startswith("tc-")]


class Wedged(RuntimeError):
    """A step left processes stuck in the file system; its connections were aborted."""


class Step:
    """One measured step: a row of the raw results."""
    FIELDS = ["rtt_ms", "target", "run", "step", "wall", "user", "sys", "fs_cpu", "rpc", "rc",
              "metric", "recalls", "extra", "fuse"]

    def __init__(self, **kw):
        for f in self.FIELDS:
            setattr(self, f, kw.get(f))
        self.extra = self.extra or {}  # step-specific figures; "error" fails the step

    def failed(self):
        return bool(self.rc or self.extra.get("error"))

    def as_dict(self):
        return {f: getattr(self, f) for f in self.FIELDS}


class Runner:
    """Runs the workloads of one (target, run) and appends Steps to results."""

    def __init__(self, env, target, run, results):
        self.env, self.t, self.run, self.results = env, target, run, results
        self.p = env.params

    # ----------------------------------------------------------------- core
    def measure(self, step, cmd, metric=None, details=None, alongside=None, timeout=None):
        """Runs cmd with the mount point as working directory and records a Step.
        metric(out, wall) gives the step's number, details(out) a dict of further
        figures; alongside (a Lister) runs while cmd does and adds its figures.
        If the step leaves processes stuck in the file system (a hung client or
        server), the step is recorded as failed and wedged() aborts the clients."""
        t, timeout = self.t, timeout or self.p["step_timeout"]
        roots = t.fs_pids()
        cpu0 = cpu_seconds(roots) if roots else None
        c0 = t.counters()
        if alongside:
            alongside.start()
        t0 = time.monotonic()
        try:
            proc = subprocess.Popen(["bash", "-c", cmd], cwd=t.mnt, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, start_new_session=True)
            out, err, rc, ru, hung = wait_rusage(proc, timeout)
            wall = time.monotonic() - t0
        except BaseException:
            if alongside:
                alongside.cancel()
            raise
        side = alongside.stop() if alongside else {}
        stuck = side.pop("stuck", False) or hung == "stuck"
        errors = ([f"timed out after {timeout}s"] if hung else []) + \
            ([side.pop("error")] if "error" in side else []) + \
            (["processes were left stuck in the file system (its connections get aborted)"]
             if stuck else [])
        if errors:
            side["error"] = "; ".join(errors)
        c1 = t.counters() if step != "sync" else None
        roots1 = sorted(set(roots) | set(t.fs_pids()))
        cpu1 = cpu_seconds(roots1) if roots1 else None
        reap_zombies()
        delta = lambda k: c1[k] - c0[k] if c0 and c1 and k in c0 and k in c1 else None
        s = Step(rtt_ms=self.env.rtt_ms, target=t.name, run=self.run, step=step,
                 wall=round(wall, 3), user=round(ru.ru_utime, 2), sys=round(ru.ru_stime, 2),
                 fs_cpu=round(cpu1 - cpu0, 2) if cpu0 is not None else None,
                 rpc=delta("rpc"), recalls=delta("recalls"), rc=rc, extra=side,
                 fuse=delta("fuse"))
        if rc == 0:
            try:
                if metric:
                    s.metric = metric(out, wall)
                if details:
                    s.extra.update(details(out))
            except (ValueError, KeyError, IndexError) as e:
                log(f"  cannot parse {step} output: {e}")
        self.results.append(s)
        extra = f" rpc {s.rpc}" if s.rpc is not None else ""
        extra += f" recalls {s.recalls}" if s.recalls is not None else ""
        extra += f" fuse {s.fuse}" if s.fuse is not None else ""
        extra += f" {s.metric}" if s.metric is not None else ""
        extra += "".join(f" {k}={v}" for k, v in s.extra.items() if k != "error")
        log(f"  {t.name} {step}: {wall:.2f}s (user {s.user} sys {s.sys} fs-cpu {s.fs_cpu}){extra}"
            + (f"  EXIT {rc}: {err.decode(errors='replace').strip()[-300:]}" if rc else "")
            + (f"  ERROR: {s.extra['error']}" if s.extra.get("error") else ""))
        if stuck:
            self.wedged(f"{step} left processes stuck in the file system")
        return s

    def wedged(self, why):
        """The file system hangs: abort its clients' connections and give up on it
        (the twoclient workload remounts and goes on; elsewhere the target ends)."""
        self.t.abort()
        raise Wedged(f"{why}; its FUSE connections were aborted")

    def cold(self):
        """Caches cold: kernel caches dropped, FUSE client freshly mounted."""
        drop_caches()
        if self.t.name != "ext4":
            self.t.umount()
            self.t.mount()
        drop_caches()

    def untimed(self, cmd, timeout=None):
        proc = subprocess.Popen(["bash", "-c", cmd], cwd=self.t.mnt, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)
        _, err, rc, _, hung = wait_rusage(proc, timeout or self.p["step_timeout"])
        if rc:
            log(f"  (setup) {cmd[:80]}: exit {rc}: {err.decode(errors='replace').strip()[-300:]}")
        if hung == "stuck":
            self.wedged(f"(setup) {cmd[:80]} left processes stuck in the file system")

    # ----------------------------------------------------------------- workloads
    def run_all(self, workloads):
        top = self.p["tar_top"]
        tree_needed = any(w in workloads for w in ("coldread", "build", "rm"))
        if "untar" in workloads:
            self.measure("untar", f"tar -xf {q(self.p['tar'])}")
        elif tree_needed:
            self.untimed(f"tar -xf {q(self.p['tar'])}")
        if "coldread" in workloads:
            # time to make the untarred data durable: sync, and for FUSE clients the
            # unmount, which flushes whatever the client daemon still holds
            if self.t.name == "ext4":
                self.measure("sync", "sync")
            else:
                # unmount, wait until the daemon has exited (zombies count as exited),
                # then sync so the server side's page cache is on disk as well
                waits = "".join(f"while [ -e /proc/{p} ] && ! grep -q ') Z' /proc/{p}/stat; "
                                "do sleep 0.01; done; " for p in self.t.daemon_pids())
                self.measure("sync", f"cd / && umount {q(self.t.mnt)} && {waits}sync")
            drop_caches()
            if self.t.name != "ext4":
                self.t.mount()
            drop_caches()
            self.measure("coldread", f"find {q(top)} -type f -print0 | xargs -0 -r cat > /dev/null")
        if "build" in workloads:
            self.measure("build", f"cd {q(top)} && {self.p['build_cmd']}")
        if "rm" in workloads:
            self.measure("rm", f"rm -rf {q(top)}")
        elif tree_needed:
            self.untimed(f"rm -rf {q(top)}")
        if "meta" in workloads:
            self.meta(1)
        if "meta4" in workloads:
            self.meta(4)
        if "git" in workloads:
            self.measure("git-clone", f"git clone -q {q(self.p['git_src'])} clone")
            self.measure("git-status", "git -C clone status --porcelain > /dev/null")
            self.untimed("rm -rf clone")
        if "fio" in workloads:
            self.fio()
        if "twoclient" in workloads:
            self.twoclient()

    def meta(self, threads):
        n, m = self.p["nfiles"], self.env.metaops
        sfx = "" if threads == 1 else f"-{threads}t"
        d = f"meta{threads}"
        self.untimed(f"mkdir {d}")
        self.measure("create" + sfx, f"{m} create {d} {n} {threads}")
        self.measure("stat-warm" + sfx, f"{m} stat {d} {n} {threads}")
        self.cold()
        self.measure("stat-cold" + sfx, f"{m} stat {d} {n} {threads}")
        if threads == 1:
            self.cold()
            self.measure("ls-l", f"ls -l {d} > /dev/null")
        self.measure("unlink" + sfx, f"{m} unlink {d} {n} {threads}")
        self.untimed(f"rm -rf {d}")

    def fio(self):
        size, rt = self.p["fio_size"], self.p["fio_rand_seconds"]
        base = (f"fio --output-format=json --name=bench --filename=fio.dat --size={size} "
                "--ioengine=psync --iodepth=1 --numjobs=1")
        self.measure("fio-seqwrite", f"{base} --rw=write --bs=1M --end_fsync=1",
                     metric=lambda o, wall: fio_write_rate(o, wall))
        self.cold()
        self.measure("fio-seqread", f"{base} --rw=read --bs=1M",
                     metric=lambda o, wall: fio_metric(o, "read", "MB/s"))
        self.cold()
        self.measure("fio-randread", f"{base} --rw=randread --bs=4k --time_based --runtime={rt}",
                     metric=lambda o, wall: fio_metric(o, "read", "IOPS"))
        self.untimed("rm -f fio.dat")

    def twoclient(self):
        """Two clients of one server: A is the target's mount, B a second mount of the
        same server (ext4: a second process on the same mount)."""
        b = self.t.mount_second()
        if b is None:
            log(f"  {self.t.name}: no second client; twoclient skipped")
            return
        try:
            for row in (self.tc_create, self.tc_untar, self.tc_stat):
                try:
                    row(b)
                except Wedged as e:  # the row is recorded as failed; fresh clients go on
                    log(f"  {e}; mounting both clients afresh")
                    self.t.umount_second()
                    self.t.umount()
                    self.t.mount()
                    b = self.t.mount_second()
        finally:
            self.t.umount_second()

    def tc_create(self, b):
        """N files from each client into one directory; then 2N from A alone, in a
        fresh directory. Both clients must then list all 2N names."""
        n, m, a, tmo = self.p["tc_nfiles"], self.env.metaops, self.t.mnt, self.p["tc_timeout"]
        rate = lambda out, wall: round(2 * n / wall)
        self.tc_untimed("mkdir tc-create")
        s = self.measure("tc-create-2", f"{m} create {q(a)}/tc-create {n} 1 a & A=$!; "
                         f"{m} create {q(b)}/tc-create {n} 1 b; rb=$?; wait $A && exit $rb",
                         metric=rate, timeout=tmo)
        (na, err_a), (nb, err_b) = (self.listing(os.path.join(mnt, "tc-create"), "-mindepth", "1")
                                    for mnt in (a, b))
        if s.rc == 0 and (na, nb) != (2 * n, 2 * n):
            fail(s, f"then A lists {na} names, B {nb}, not {2 * n} "
                 f"({err_a or err_b or 'no error'})")
        self.tc_untimed("mkdir tc-create-alone")
        self.measure("tc-create-1", f"{m} create tc-create-alone {2 * n} 1 a", metric=rate,
                     timeout=tmo)
        self.tc_untimed("rm -rf tc-create tc-create-alone")

    def tc_untar(self, b):
        """A untars alone; then, in a fresh directory, again while B lists the tree
        over and over. B's listings must not fail, and must end up seeing A's tree."""
        tar, a, tmo = q(self.p["tar"]), self.t.mnt, self.p["tc_timeout"]
        self.tc_untimed("mkdir tc-untar-alone")
        self.measure("tc-untar-1", f"tar -xf {tar} -C tc-untar-alone", timeout=tmo)
        self.tc_untimed("rm -rf tc-untar-alone")
        self.tc_untimed("mkdir tc-untar")
        lister = Lister(os.path.join(b, "tc-untar"), tmo)
        s = self.measure("tc-untar-2", f"tar -xf {tar} -C tc-untar", alongside=lister,
                         timeout=tmo)
        (na, err_a), (nb, err_b) = (self.listing(os.path.join(mnt, "tc-untar")) for mnt in (a, b))
        if s.rc == 0 and (na is None or na != nb):
            fail(s, f"then A lists {na} entries, B {nb} ({err_a or err_b or 'no error'})")
        self.tc_untimed("rm -rf tc-untar")

    def tc_stat(self, b):
        """A creates a file, then B lstat()s it: latency of the pair, B's misses."""
        n, a = self.p["tc_stats"], self.t.mnt
        self.tc_untimed("mkdir tc-stat")
        s = self.measure("tc-stat-other",
                         f"{self.env.metaops} create-stat {q(a)}/tc-stat {q(b)}/tc-stat {n}",
                         metric=lambda out, wall: keyvals(out)["pair_p50_us"], details=keyvals,
                         timeout=self.p["tc_timeout"])
        if s.extra.get("misses"):
            fail(s, f"B did not see {s.extra['misses']} of {n} files A had just created")
        self.tc_untimed("rm -rf tc-stat")

    def tc_untimed(self, cmd):
        self.untimed(cmd, self.p["tc_timeout"])

    def listing(self, path, *find_args):
        """(entries `find PATH` prints, error or None), untimed, for the checks after
        a step; a hang fails that step and aborts the clients (wedged)."""
        n, err, stuck = list_tree(path, self.p["tc_timeout"], *find_args)
        if stuck:
            fail(self.results[-1], f"then find {path} hung")
            self.wedged(f"find {path}: {err}")
        return n, err


class Lister:
    """The other client's reads during a step: `find DIR | wc -l` over and over,
    from a thread, from start() until stop(). Any failed listing fails the step."""

    def __init__(self, path, timeout):
        self.path, self.timeout = path, timeout
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.listings, self.errors = 0, []

    def start(self):
        self.thread.start()

    def loop(self):
        while not self.done.is_set():
            _, err, stuck = list_tree(self.path, self.timeout)
            self.listings += 1
            if err:
                self.errors.append(err)
            if stuck:
                return

    def cancel(self):
        """No more listings; the one under way dies with the runner's cleanup."""
        self.done.set()

    def stop(self):
        """Lets the listing under way finish (waits up to the timeout)."""
        self.done.set()
        self.thread.join(self.timeout + 10)  # a hung listing reports itself after timeout
        out = {"listings": self.listings, "list_errors": len(self.errors)}
        if self.thread.is_alive():
            out.update(error=f"a listing of {self.path} did not end", stuck=True)
        elif self.errors and self.errors[-1].startswith("stuck"):
            out.update(error=f"a listing of {self.path} {self.errors[-1]}", stuck=True)
        elif self.errors:
            out["error"] = f"{len(self.errors)} listings failed, first: {self.errors[0]}"
        return out


def list_tree(path, timeout, *find_args):
    """`find PATH | wc -l`: (entries, error text or None, stuck). Output goes to
    files, not pipes, so a find stuck in a hung file system cannot hold us: after
    timeout it is killed and, if it still does not exit, reported stuck."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.Popen(["find", path, *find_args], stdout=out, stderr=err,
                             stdin=subprocess.DEVNULL)
        try:
            rc = p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                return None, f"stuck: find still runs {timeout}s in, unkillable", True
            return None, f"find took over {timeout}s", False
        out.seek(0)
        err.seek(0)
        n, msg = out.read().count(b"\n"), err.read().decode(errors="replace").strip()
    if rc or msg:
        return None, f"find exit {rc}: {msg[-300:]}", False
    return n, None, False


def keyvals(out):
    """{key: number} from a line of key=value words (metaops create-stat)."""
    words = (w.split("=", 1) for w in out.decode().split() if "=" in w)
    return {k: float(v) if "." in v else int(v) for k, v in words}


def fail(step, why):
    step.extra["error"] = why
    log(f"  {step.target} {step.step}: ERROR: {why}")


def fio_metric(out, kind, unit):
    text = out.decode(errors="replace")
    j = json.loads(text[text.index("{"):])
    r = j["jobs"][0][kind]
    return round(r["bw_bytes"] / 1e6, 1) if unit == "MB/s" else round(r["iops"])


def fio_write_rate(out, wall):
    """MB/s including the final fsync: bytes written / wall time of the whole step
    (fio's own bandwidth figure leaves the end_fsync out)."""
    text = out.decode(errors="replace")
    j = json.loads(text[text.index("{"):])
    return round(j["jobs"][0]["write"]["io_bytes"] / wall / 1e6, 1)


def q(s):
    return shlex.quote(str(s))


def wait_rusage(proc, timeout, grace=30):
    """Waits for proc, returning (stdout, stderr, rc, rusage of it and its children,
    hung). Output goes through pipes read by threads so a chatty command cannot
    block. hung: None; "timed out" (killed after timeout); or "stuck": timed out,
    and grace seconds after the kill something of it (a process waiting in a hung
    file system) still holds its output open."""
    bufs = {"out": b"", "err": b""}
    fired = threading.Event()

    def drain(name, f):
        bufs[name] = f.read()

    th = [threading.Thread(target=drain, args=("out", proc.stdout), daemon=True),
          threading.Thread(target=drain, args=("err", proc.stderr), daemon=True)]
    for x in th:
        x.start()

    def kill():
        fired.set()
        log(f"  step timed out after {timeout}s; killing it")
        os.killpg(proc.pid, signal.SIGKILL)

    timer = threading.Timer(timeout, kill)
    timer.start()
    try:
        _, status, ru = os.wait4(proc.pid, 0)
    except BaseException:  # interrupted: do not leave the command running in the mount
        os.killpg(proc.pid, signal.SIGKILL)
        os.wait4(proc.pid, 0)
        raise
    finally:
        timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    for x in th:
        x.join(grace if fired.is_set() else None)
    hung = ("stuck" if any(x.is_alive() for x in th) else "timed out") if fired.is_set() else None
    return bufs["out"], bufs["err"], proc.returncode, ru, hung
