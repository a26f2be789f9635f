"""bench/run: cohfs against local ext4 and the file systems users would pick instead.

For each added round-trip time and each target: set the target up over loopback,
run the workloads --runs times, tear it down. Then print (and write to
bench/results/) one table per round-trip time. See bench/README.md.
"""
import argparse
import datetime
import fcntl
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time

from . import targets as T
from . import util
from .report import raw_tsv, render
from .util import log, sh
from .workloads import DEFAULT, STEP_LABELS, WORKLOADS, Runner, Step

BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(BENCH)
INPUTS = "/dev/shm/cohfs-bench-inputs"   # inputs live in RAM, outside every target
FULL_TAR = "/dev/shm/linux-6.1.tar"
KERNEL_XZ = "/usr/src/linux-source-6.1.tar.xz"
DEFAULT_TARGETS = "ext4,cohfs,sshfs,sshfs-cache,bindfs,glusterfs"

# Debian packages: (command or path that proves it is installed, package, needed if)
PACKAGES = [
    ("g++", "g++", lambda a: True), ("make", "make", lambda a: True),
    ("mkfs.ext4", "e2fsprogs", lambda a: True), ("xz", "xz-utils", lambda a: not a.quick),
    (KERNEL_XZ, "linux-source-6.1", lambda a: not a.quick),
    ("sshfs", "sshfs", lambda a: any(t.startswith("sshfs") for t in a.targets)),
    ("/usr/sbin/sshd", "openssh-server", lambda a: any(t.startswith("sshfs") for t in a.targets)),
    ("bindfs", "bindfs", lambda a: "bindfs" in a.targets),
    ("pkg-config", "pkg-config", lambda a: "passthrough_ll" in a.targets),
    ("/usr/share/doc/libfuse3-dev/examples/passthrough_ll.c", "libfuse3-dev",
     lambda a: "passthrough_ll" in a.targets),
    ("glusterd", "glusterfs-server", lambda a: "glusterfs" in a.targets),
    ("glusterfs", "glusterfs-client", lambda a: "glusterfs" in a.targets),
    ("fio", "fio", lambda a: "fio" in a.workloads), ("git", "git", lambda a: "git" in a.workloads),
    ("bc", "bc", lambda a: "build" in a.workloads and not a.quick),
    ("flex", "flex", lambda a: "build" in a.workloads and not a.quick),
    ("bison", "bison", lambda a: "build" in a.workloads and not a.quick),
    ("/usr/include/libelf.h", "libelf-dev", lambda a: "build" in a.workloads and not a.quick),
    ("/usr/include/openssl/ssl.h", "libssl-dev",
     lambda a: "build" in a.workloads and not a.quick),
]


class Interrupted(Exception):
    pass


class Env:
    """What every target and workload needs; owned by main()."""

    def __init__(self, args):
        self.workdir = os.path.abspath(args.workdir)
        self.cohfs = os.path.abspath(args.cohfs)
        self.cohfs_base = os.path.abspath(args.cohfs_base) if args.cohfs_base else None
        self.img_size = args.image_size
        self.rtt_ms = 0.0
        self.relay = os.path.join(self.workdir, "tools", "relay")
        self.metaops = os.path.join(self.workdir, "tools", "metaops")
        self.params = {}

    def log(self, name):
        return os.path.join(self.workdir, "logs", f"{name}.log")


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="bench/run", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--targets", default=DEFAULT_TARGETS,
                    help=f"comma list, in table order (default {DEFAULT_TARGETS}; all: "
                    f"{','.join(T.ALL)})")
    ap.add_argument("--workloads", default=",".join(DEFAULT),
                    help=f"comma list of {','.join(WORKLOADS)} (default: all but build)")
    ap.add_argument("--build", action="store_true", help="add the kernel build step (long)")
    ap.add_argument("--rtt-ms", default="0", help="comma list of added round-trip times in ms "
                    "for cohfs and sshfs (default 0), e.g. 0,0.2,1,5")
    ap.add_argument("--runs", type=int, default=None, help="repetitions (default 3, 1 with --quick)")
    ap.add_argument("--quick", action="store_true", help="tiny inputs, 1 run: a smoke test")
    ap.add_argument("--workdir", default="/var/tmp/cohfs-bench-work",
                    help="images, mounts, logs, raw results (default %(default)s)")
    ap.add_argument("--cohfs", default=os.path.join(REPO, "build", "cohfs"))
    ap.add_argument("--cohfs-base", default=None,
                    help="a second cohfs binary, target cohfs-base (e.g. main's, for an A/B)")
    ap.add_argument("--image-size", default="20G")
    ap.add_argument("--label", default=None, help="results file is bench/results/DATE-LABEL.md")
    ap.add_argument("--no-results-file", action="store_true", help="print the report only")
    ap.add_argument("--no-install", action="store_true", help="do not apt-get missing packages")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args(argv)
    a.targets = [t for t in a.targets.split(",") if t]
    for t in a.targets:
        if t not in T.ALL:
            ap.error(f"unknown target {t}")
    # names of an earlier prototype of this runner map onto the workloads that cover them
    alias = {"create": "meta", "ls": "meta", "unlink": "meta", "ddwrite": "fio", "ddread": "fio"}
    a.workloads = [alias.get(w, w) for w in a.workloads.split(",") if w]
    if a.build and "build" not in a.workloads:
        a.workloads.append("build")
    for w in a.workloads:
        if w not in WORKLOADS:
            ap.error(f"unknown workload {w}")
    a.workloads = [w for w in WORKLOADS if w in a.workloads]  # canonical order
    a.rtts = [float(x) for x in a.rtt_ms.split(",")]
    if a.runs is None:
        a.runs = 1 if a.quick else 3
    return a


# ------------------------------------------------------------------ setup
def ensure_packages(args):
    need = []
    for probe, pkg, wanted in PACKAGES:
        if not wanted(args):
            continue
        found = os.path.exists(probe) if probe.startswith("/") else shutil.which(probe)
        if not found and pkg not in need:
            need.append(pkg)
    if not need:
        return
    if args.no_install:
        log(f"missing packages (not installing): {' '.join(need)}")
        return
    log(f"installing Debian packages: {' '.join(need)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "-q", *need]
    if subprocess.run(cmd, env=env, capture_output=True).returncode != 0:
        sh(["apt-get", "update", "-q"], env=env)
        p = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if p.returncode != 0:
            log(f"apt-get install failed; targets that need them will be skipped:\n"
                f"{p.stderr.strip()[-1000:]}")


def build_tools(env):
    os.makedirs(os.path.dirname(env.relay), exist_ok=True)
    for out, src, extra in ((env.relay, "relay.cc", []), (env.metaops, "metaops.cc", ["-pthread"])):
        src = os.path.join(BENCH, src)
        if not os.path.exists(out) or os.path.getmtime(out) < os.path.getmtime(src):
            sh(["g++", "-O2", "-std=c++20", "-Wall", "-Wextra", *extra, "-o", out, src])


def prepare_inputs(args, env):
    """Tarball, git source repository and build command, in RAM (/dev/shm)."""
    os.makedirs(INPUTS, exist_ok=True)
    p = env.params
    if args.quick:
        p.update(tar=f"{INPUTS}/quick.tar", tar_top="quick", nfiles=500, fio_size="32M",
                 fio_rand_seconds=2, step_timeout=600, git_src=f"{INPUTS}/git-quick",
                 build_cmd="make -s -j2", tc_nfiles=1000, tc_stats=100, tc_timeout=120)
        if not os.path.exists(p["tar"]):
            make_quick_tar(p["tar"])
        p["build_cmd"] = "make -s -C proj -j2"
    else:
        p.update(tar=FULL_TAR, tar_top="linux-source-6.1", nfiles=10000, fio_size="1G",
                 fio_rand_seconds=20, step_timeout=3 * 3600, git_src=f"{INPUTS}/git-full",
                 build_cmd="make -s tinyconfig > /dev/null && make -s -j2 > /dev/null",
                 tc_nfiles=10000, tc_stats=1000, tc_timeout=1800)
        if not full_tar_ok():
            log(f"decompressing {KERNEL_XZ} to {FULL_TAR}")
            sh(f"xz -dc {KERNEL_XZ} > {FULL_TAR}.tmp && mv {FULL_TAR}.tmp {FULL_TAR}")
    # entries of the tarball: FUSE requests of the untar per entry
    p["tar_entries"] = sh(["tar", "-tf", p["tar"]]).stdout.count("\n")
    if "git" in args.workloads and not os.path.isdir(os.path.join(p["git_src"], ".git")):
        make_git_src(p, quick=args.quick)


def full_tar_ok():
    if not os.path.exists(FULL_TAR):
        return False
    out = sh(["xz", "--robot", "--list", KERNEL_XZ]).stdout
    total = [l for l in out.splitlines() if l.startswith("totals")][0].split()
    return os.path.getsize(FULL_TAR) == int(total[4])


def make_quick_tar(path):
    """~900 entries: the kernel's UAPI headers, a symlink, and a small C project for
    the quick "build" step."""
    src = f"{INPUTS}/quick-src"
    shutil.rmtree(src, ignore_errors=True)
    q = f"{src}/quick"
    os.makedirs(f"{q}/proj")
    shutil.copytree("/usr/include/linux", f"{q}/include-linux", symlinks=True)
    os.symlink("include-linux/types.h", f"{q}/types-link.h")
    objs = []
    for i in range(24):
        with open(f"{q}/proj/u{i}.c", "w") as f:
            f.write(f'#include <stdio.h>\n#include <string.h>\n'
                    f'int u{i}(const char *s) {{ return (int)strlen(s) * {i}; }}\n')
        objs.append(f"u{i}.o")
    with open(f"{q}/proj/main.c", "w") as f:
        f.write("int main(void) { return 0; }\n")
    with open(f"{q}/proj/Makefile", "w") as f:
        f.write(f"prog: main.o {' '.join(objs)}\n\t$(CC) -o $@ $^\n")
    sh(["tar", "-cf", path + ".tmp", "-C", src, "quick"])
    os.rename(path + ".tmp", path)
    shutil.rmtree(src)


def make_git_src(p, quick):
    """A committed, packed repository; built under a temporary name, then renamed."""
    d = p["git_src"]
    tmp = d + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    if quick:
        sh(["tar", "-xf", p["tar"], "-C", tmp, "--strip-components=1", "quick/include-linux"])
    else:
        # fs/ and include/ of the kernel: ~8,000 files in ~600 directories
        sh(["tar", "-xf", FULL_TAR, "-C", tmp, "--strip-components=1",
            "linux-source-6.1/fs", "linux-source-6.1/include"])
    log(f"making git repository {d}")
    g = ["git", "-C", tmp, "-c", "user.name=bench", "-c", "user.email=bench@localhost",
         "-c", "gc.auto=0"]
    sh(g + ["init", "-q"])
    sh(g + ["add", "-A"])
    sh(g + ["commit", "-q", "-m", "benchmark input"])
    sh(g + ["gc", "-q"])
    shutil.rmtree(d, ignore_errors=True)
    os.rename(tmp, d)


def stale_cleanup(env):
    """Removes what a killed earlier run may have left under the work directory."""
    procs = util.all_procs()
    ancestors, p = set(), os.getpid()
    while p in procs and p not in ancestors:  # never our own callers (timeout, sudo, shells)
        ancestors.add(p)
        p = procs[p][0]
    for pid in util.find_pids(lambda argv: any(env.workdir in a for a in argv)):
        if pid not in ancestors:
            log(f"killing stale process {pid}: {' '.join(util.cmdline(pid))[:100]}")
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    for m in util.mounts_under(env.workdir):
        log(f"unmounting stale {m}")
        util.umount(m)
    for dev in util.loops_backed_by(env.workdir):
        log(f"detaching stale {dev}")
        subprocess.run(["losetup", "-d", dev])
    shutil.rmtree(os.path.join(env.workdir, "img"), ignore_errors=True)
    shutil.rmtree(os.path.join(env.workdir, "mnt"), ignore_errors=True)


def final_cleanup(env, active):
    for t in active:
        try:
            t.teardown()
        except Exception as e:  # keep cleaning up whatever else is left
            log(f"teardown of {t.name}: {e}")
    for m in util.mounts_under(env.workdir):
        util.umount(m)
    util.kill_descendants()
    for m in util.mounts_under(env.workdir):
        util.umount(m)
    for dev in util.loops_backed_by(env.workdir):
        subprocess.run(["losetup", "-d", dev])
    shutil.rmtree(os.path.join(env.workdir, "img"), ignore_errors=True)


# ------------------------------------------------------------------ main loop
def run_target(args, env, name, rtt, steps, notes, active):
    t = T.ALL[name](env)
    env.rtt_ms = rtt if t.networked else 0.0
    log(f"== {name}" + (f" at +{rtt:g} ms RTT" if t.networked and rtt else ""))
    active.append(t)
    try:
        t.setup()
        for run in range(1, args.runs + 1):
            Runner(env, t, run, steps).run_all(args.workloads)
            for s in steps:
                if s.target == name and not t.networked:
                    s.rtt_ms = None  # local: one measurement serves every RTT table
    except T.Skip as e:
        log(f"   skipped: {e}")
        notes.append(f"{name}: skipped: {e}")
    except (Interrupted, KeyboardInterrupt):
        raise
    except Exception as e:
        log(f"   {name} failed: {e}")
        notes.append(f"{name}" + (f" (+{rtt:g} ms)" if rtt else "") + f": failed: "
                     f"{str(e).splitlines()[0]}")
    finally:
        try:
            t.teardown()
        finally:
            active.remove(t)


def machine_header(args, cmdline):
    mem = [l for l in open("/proc/meminfo") if l.startswith("MemTotal")][0].split()[1]
    cpu = [l for l in open("/proc/cpuinfo") if l.startswith("model name")]
    commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain"], capture_output=True,
                           text=True).stdout.strip() != ""
    disk = subprocess.run(["findmnt", "-n", "-o", "SOURCE,FSTYPE", "-T", args.workdir],
                          capture_output=True, text=True).stdout.strip()

    def ver(cmd):
        p = subprocess.run(cmd, shell=True, capture_output=True, text=True)
        return (p.stdout + p.stderr).strip().splitlines()[0] if (p.stdout + p.stderr).strip() else "?"

    return [
        f"- date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- command: `{cmdline}`",
        f"- commit: {commit}{' (the work tree had uncommitted or untracked changes)' if dirty else ''}",
        f"- machine: {os.cpu_count()} cores ({cpu[0].split(':')[1].strip() if cpu else '?'}), "
        f"{int(mem) / 2**20:.1f} GiB RAM, Linux {platform.release()}, "
        f"images on {disk} ({args.workdir})",
        f"- versions: {ver('sshfs -V 2>&1 | grep -i sshfs.version')}; {ver('bindfs --version')}; "
        f"{ver('glusterfs --version')}; {ver('fio --version')}; {ver('git --version')}",
    ]


def main(argv):
    args = parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("bench/run must run as root (loop devices, mounts, drop_caches)")
    if (os.environ.get("COHFS_BENCH_NS") != "1" and shutil.which("unshare") and
            subprocess.run(["unshare", "--mount", "true"]).returncode == 0):
        # A private mount namespace: our mounts are invisible to everyone else and
        # vanish with the last process in it.
        os.environ["COHFS_BENCH_NS"] = "1"
        os.execvp("unshare", ["unshare", "--mount", "--propagation", "private", "--",
                              sys.executable, os.path.abspath(sys.argv[0]), *argv])
    util.VERBOSE = args.verbose
    util.become_subreaper()

    def on_signal(signum, frame):
        raise Interrupted(signal.Signals(signum).name)

    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)

    env = Env(args)
    os.makedirs(os.path.join(env.workdir, "logs"), exist_ok=True)
    lock = open(os.path.join(env.workdir, ".lock"), "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        sys.exit(f"another bench/run is using {env.workdir}")

    cmdline = "bench/run " + " ".join(argv)
    started = time.time()
    steps, notes, active = [], [], []
    raw = os.path.join(env.workdir, f"results-{time.strftime('%Y%m%d-%H%M%S')}.jsonl")
    interrupted = None
    try:
        stale_cleanup(env)
        ensure_packages(args)
        build_tools(env)
        prepare_inputs(args, env)
        log(f"targets {','.join(args.targets)}; workloads {','.join(args.workloads)}; "
            f"rtt {args.rtt_ms} ms; runs {args.runs}; workdir {env.workdir}")
        done_local = set()
        for rtt in args.rtts:
            for name in args.targets:
                cls = T.ALL[name]
                if not cls.networked and name in done_local:
                    continue  # no network: measured once, shown in every RTT table
                if rtt > 0 and name == "glusterfs":
                    notes.append(f"glusterfs at +{rtt:g} ms: not measured (the relay covers "
                                 "cohfs and sshfs only; gluster uses several ports)")
                    continue
                done_local.add(name)
                n0 = len(steps)
                run_target(args, env, name, rtt, steps, notes, active)
                with open(raw, "a") as f:
                    for s in steps[n0:]:
                        f.write(json.dumps(s.as_dict()) + "\n")
    except Interrupted as e:
        interrupted = str(e)
        log(f"interrupted by {e}; cleaning up")
    finally:
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)  # let cleanup finish
        final_cleanup(env, active)
    if interrupted:
        notes.append(f"interrupted by {interrupted}: partial results (steps measured before then)")
    if not steps:
        log("no results")
        for n in notes:
            log(n)
        sys.exit(1)
    step_order = list(STEP_LABELS)
    p = env.params
    lines = [f"# cohfs benchmark: {'quick smoke run' if args.quick else 'full run'}", ""]
    lines += machine_header(args, cmdline)
    lines += [
        f"- inputs: untar {p['tar']} ({p['tar_top']}/, {p['tar_entries']} entries); {p['nfiles']} files for the metadata "
        f"steps; git clone of {p['git_src']}; fio file {p['fio_size']}, random reads for "
        f"{p['fio_rand_seconds']} s; two clients: {p['tc_nfiles']} files each, "
        f"{p['tc_stats']} create-then-stat pairs; runs per target: {args.runs} (medians shown)",
        f"- wall time of the whole invocation: {(time.time() - started) / 60:.1f} min",
        "", render(steps, args.targets, args.rtts, step_order, notes, p["tar_entries"]), "",
        "<details><summary>raw results (one row per step and run; wall, user, sys, fs_cpu in "
        "seconds; metric in MB/s or IOPS)</summary>", "", "```", raw_tsv(steps), "```",
        "", "</details>", ""]
    report = "\n".join(lines)
    print(report)
    if not args.no_results_file:
        label = args.label or "-".join([
            "quick" if args.quick else "full",
            "+".join(args.targets) if args.targets != DEFAULT_TARGETS.split(",") else "all",
            "rtt" + "+".join(f"{r:g}" for r in args.rtts)])
        os.makedirs(os.path.join(BENCH, "results"), exist_ok=True)
        out = os.path.join(BENCH, "results", f"{time.strftime('%Y-%m-%d')}-{label}.md")
        with open(out, "w") as f:
            f.write(report)
        log(f"results written to {os.path.relpath(out, REPO)}")
    if interrupted:
        sys.exit(130)
