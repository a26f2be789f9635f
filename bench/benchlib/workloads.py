"""Workloads and the measurement of one step.

A workload is a sequence of measured steps on one mounted target. Each step is
one shell command run with cwd = the mount point; for it we record wall time,
the user/sys CPU of the command and everything it waited for (wait4 rusage),
the CPU the file system's own processes used meanwhile (/proc utime+stime), and
for cohfs the server round trips (round_trips from `cohfs stats`).

"Cold" means: sync; echo 3 > /proc/sys/vm/drop_caches; and for FUSE targets the
client is unmounted and mounted again (servers keep running), then caches are
dropped once more.
"""
import json
import os
import shlex
import signal
import subprocess
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
}


class Step:
    """One measured step: a row of the raw results."""
    FIELDS = ["rtt_ms", "target", "run", "step", "wall", "user", "sys", "fs_cpu", "rpc", "rc",
              "metric"]

    def __init__(self, **kw):
        for f in self.FIELDS:
            setattr(self, f, kw.get(f))

    def as_dict(self):
        return {f: getattr(self, f) for f in self.FIELDS}


class Runner:
    """Runs the workloads of one (target, run) and appends Steps to results."""

    def __init__(self, env, target, run, results):
        self.env, self.t, self.run, self.results = env, target, run, results
        self.p = env.params

    # ----------------------------------------------------------------- core
    def measure(self, step, cmd, metric=None):
        """Runs cmd with the mount point as working directory and records a Step."""
        t = self.t
        roots = t.fs_pids()
        cpu0 = cpu_seconds(roots) if roots else None
        rpc0 = t.rpc_total()
        t0 = time.monotonic()
        proc = subprocess.Popen(["bash", "-c", cmd], cwd=t.mnt, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)
        out, err, rc, ru = wait_rusage(proc, self.p["step_timeout"])
        wall = time.monotonic() - t0
        rpc1 = t.rpc_total() if step != "sync" else None
        roots1 = sorted(set(roots) | set(t.fs_pids()))
        cpu1 = cpu_seconds(roots1) if roots1 else None
        reap_zombies()
        s = Step(rtt_ms=self.env.rtt_ms, target=t.name, run=self.run, step=step,
                 wall=round(wall, 3), user=round(ru.ru_utime, 2), sys=round(ru.ru_stime, 2),
                 fs_cpu=round(cpu1 - cpu0, 2) if cpu0 is not None else None,
                 rpc=(rpc1 - rpc0) if rpc0 is not None and rpc1 is not None else None, rc=rc)
        if metric and rc == 0:
            try:
                s.metric = metric(out, wall)
            except (ValueError, KeyError, IndexError) as e:
                log(f"  cannot parse {step} output: {e}")
        self.results.append(s)
        extra = f" rpc {s.rpc}" if s.rpc is not None else ""
        extra += f" {s.metric}" if s.metric is not None else ""
        log(f"  {t.name} {step}: {wall:.2f}s (user {s.user} sys {s.sys} fs-cpu {s.fs_cpu}){extra}"
            + (f"  EXIT {rc}: {err.decode(errors='replace').strip()[-300:]}" if rc else ""))
        return s

    def cold(self):
        """Caches cold: kernel caches dropped, FUSE client freshly mounted."""
        drop_caches()
        if self.t.name != "ext4":
            self.t.umount()
            self.t.mount()
        drop_caches()

    def untimed(self, cmd):
        p = subprocess.run(["bash", "-c", cmd], cwd=self.t.mnt, capture_output=True, text=True)
        if p.returncode:
            log(f"  (setup) {cmd[:80]}: exit {p.returncode}: {p.stderr.strip()[-300:]}")

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


def wait_rusage(proc, timeout):
    """Waits for proc, returning (stdout, stderr, rc, rusage of it and its children).
    Output goes through pipes read by threads so a chatty command cannot block."""
    import threading
    bufs = {"out": b"", "err": b""}

    def drain(name, f):
        bufs[name] = f.read()

    th = [threading.Thread(target=drain, args=("out", proc.stdout)),
          threading.Thread(target=drain, args=("err", proc.stderr))]
    for x in th:
        x.start()
    def kill():
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
        x.join()
    return bufs["out"], bufs["err"], proc.returncode, ru
