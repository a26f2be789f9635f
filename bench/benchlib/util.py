"""Process, mount and CPU-accounting helpers for bench/run.

Ownership: the runner process is a child subreaper (PR_SET_CHILD_SUBREAPER),
so every daemon it starts, including FUSE daemons and gluster bricks that
fork into the background, stays its descendant. Cleanup therefore does not
have to guess: it unmounts what it mounted, detaches what it attached, and
kills its own descendants.
"""
import ctypes
import os
import signal
import subprocess
import sys
import time

_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
HZ = os.sysconf("SC_CLK_TCK")

VERBOSE = False


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def become_subreaper():
    _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _die_with_parent():
    # Servers we start directly die if the runner is killed outright.
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def sh(cmd, check=True, quiet=True, timeout=None, **kw):
    """Runs a setup/teardown command (not measured). cmd is a list or a shell string."""
    shell = isinstance(cmd, str)
    if VERBOSE:
        log(f"$ {cmd if shell else ' '.join(cmd)}")
    p = subprocess.run(cmd, shell=shell, capture_output=quiet, text=True, timeout=timeout, **kw)
    if check and p.returncode != 0:
        out = (p.stderr or "") + (p.stdout or "") if quiet else ""
        raise RuntimeError(f"command failed ({p.returncode}): {cmd}\n{out.strip()[-2000:]}")
    return p


def spawn(args, logfile):
    """Starts a long-running server in the foreground of its own process; returns Popen."""
    f = open(logfile, "ab")
    return subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            preexec_fn=_die_with_parent)


def wait_for(pred, what, timeout=20.0, step=0.05):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return
        time.sleep(step)
    raise RuntimeError(f"timed out waiting for {what}")


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def port_open(port):
    import socket
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


# ------------------------------------------------------------------ /proc
def _stat(pid):
    """(ppid, state, cpu_ticks incl. reaped children) or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    rest = s[s.rindex(")") + 2:].split()
    # after comm: state ppid ... utime(14) stime(15) cutime(16) cstime(17)
    return int(rest[1]), rest[0], sum(int(x) for x in rest[11:15])


def all_procs():
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = _stat(d)
            if st:
                out[int(d)] = st
    return out


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def find_pids(pred):
    """pids whose argv satisfies pred(argv)."""
    return [p for p in all_procs() if pred(cmdline(p))]


def descendants(roots, procs=None):
    procs = procs if procs is not None else all_procs()
    children = {}
    for pid, (ppid, _, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    seen, stack = set(), [r for r in roots if r in procs]
    while stack:
        p = stack.pop()
        if p not in seen:
            seen.add(p)
            stack.extend(children.get(p, []))
    return seen


def cpu_seconds(roots):
    """CPU seconds (user+sys, including reaped children) of the trees under roots.
    Zombies count: their totals stay readable until they are reaped."""
    procs = all_procs()
    return sum(procs[p][2] for p in descendants(roots, procs)) / HZ


def reap_zombies(keep=()):
    """Reaps our zombie children (daemons reparented to us) except pids in keep."""
    me = os.getpid()
    for pid, (ppid, state, _) in all_procs().items():
        if ppid == me and state == "Z" and pid not in keep:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


def kill_descendants(grace=5.0):
    """SIGTERM then SIGKILL every process below the runner."""
    me = os.getpid()
    live = lambda: [p for p in descendants([me]) - {me} if all_procs().get(p, (0, "Z"))[1] != "Z"]
    pids = live()
    for p in pids:
        try:
            os.kill(p, signal.SIGTERM)
        except ProcessLookupError:
            pass
    end = time.time() + grace
    while pids and time.time() < end:
        time.sleep(0.1)
        reap_zombies()
        pids = live()
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    time.sleep(0.1)
    reap_zombies()


# ------------------------------------------------------------------ mounts
def is_mountpoint(path):
    return subprocess.run(["mountpoint", "-q", path]).returncode == 0


def umount(path, lazy_fallback=True):
    if not is_mountpoint(path):
        return
    p = subprocess.run(["umount", path], capture_output=True, text=True)
    if p.returncode != 0 and lazy_fallback:
        log(f"umount {path} failed ({p.stderr.strip()}); lazy unmount")
        subprocess.run(["umount", "-l", path])


def mounts_under(prefix):
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].replace("\\040", " ")
            if mp.startswith(prefix.rstrip("/") + "/"):
                out.append(mp)
    return sorted(out, reverse=True)


def fuse_connection(mnt):
    """The fusectl connection number of the FUSE mount at mnt, from mountinfo (the
    mount itself is not touched: it may hang), or None if mnt is not FUSE."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            fstype = fields[fields.index("-") + 1]
            if fields[4].replace("\\040", " ") == mnt and fstype.startswith("fuse"):
                major, minor = (int(x) for x in fields[2].split(":"))
                return (major << 20) | minor
    return None


def abort_fuse(mnt):
    """Aborts the FUSE connection of the mount at mnt: requests waiting in it fail
    with ENOTCONN, so processes stuck on a hung daemon exit and the mount can go.
    fusectl is mounted if needed (in the runner's private mount namespace)."""
    conn = fuse_connection(mnt)
    if conn is None:
        return False
    ctl = "/sys/fs/fuse/connections"
    if not os.path.exists(f"{ctl}/{conn}"):
        subprocess.run(["mount", "-t", "fusectl", "fusectl", ctl], capture_output=True)
    try:
        with open(f"{ctl}/{conn}/abort", "w") as f:
            f.write("1\n")
    except OSError as e:
        log(f"cannot abort the FUSE connection of {mnt}: {e}")
        return False
    log(f"aborted the FUSE connection of {mnt}")
    return True


def loops_backed_by(prefix):
    p = subprocess.run(["losetup", "-nO", "NAME,BACK-FILE"], capture_output=True, text=True)
    out = []
    for line in p.stdout.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and parts[1].strip().startswith(prefix.rstrip("/") + "/"):
            out.append(parts[0])
    return out


def drop_caches():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")
