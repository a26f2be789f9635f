"""The file systems under test: setup, client (re)mount, teardown, and which
processes are "the file system" for CPU accounting.

Every target gets fresh images under env.workdir on the same disk:
- ext4: mkfs.ext4 on a loop-mounted image; the physical limit.
- cohfs: `cohfs serve` on an image file, `cohfs mount` over loopback (and a
  second `cohfs mount` of the same server while the twoclient workload runs).
- sshfs / sshfs-cache: a private sshd on 127.0.0.1 (key authentication) exporting
  a directory on an ext4 loop image; default options / caching turned up.
- bindfs: FUSE passthrough of a directory on an ext4 loop image.
- passthrough_ll: libfuse's low-level passthrough example (built here from the
  source Debian's libfuse3-dev ships) over a directory on an ext4 loop image,
  with its best caching: the FUSE floor.
- cohfs-base: cohfs again with the --cohfs-base binary (an A/B in one run).
- glusterfs: glusterd + one brick on an ext4 loop image, its FUSE client.
With --rtt-ms X > 0, cohfs and sshfs clients connect through bench/relay.cc.
"""
import os
import resource
import shutil
import subprocess
import time

from .util import (abort_fuse, cmdline, find_pids, free_port, is_mountpoint, log, port_open, sh,
                   spawn, umount, wait_for)


class Skip(Exception):
    """The target cannot run on this machine; the message says why."""


class Target:
    name = "?"
    networked = False  # goes over TCP, so --rtt-ms applies

    def __init__(self, env):
        self.env = env
        self.mnt = os.path.join(env.workdir, "mnt", self.name)
        self.servers = []  # Popen objects we own
        self.relay = None
        self.backing = None

    # --- lifecycle -------------------------------------------------------
    def setup(self):
        raise NotImplementedError

    def mount(self):
        pass

    def umount(self):
        pass

    def mount_second(self):
        """A second client of the same file system for the twoclient workload: its
        mount point, or None if this target has none (the workload is skipped)."""
        return None

    def umount_second(self):
        pass

    def abort(self):
        """Aborts the FUSE connections of this target's clients, so processes stuck
        in a hung file system exit and teardown can unmount (no-op for ext4)."""
        for mnt in self.clients():
            abort_fuse(mnt)

    def clients(self):
        return [self.mnt]

    def teardown(self):
        self.umount()
        for p in reversed(self.servers):
            stop(p)
        self.servers = []
        if self.backing:
            umount(self.backing)
        for f in self.images():
            rm_image(f)

    def images(self):
        return [os.path.join(self.env.workdir, "img", f"{self.name}.img")]

    # --- accounting -------------------------------------------------------
    def fs_pids(self):
        """Roots of the process trees that are this file system (servers + daemon)."""
        return [p.pid for p in self.servers] + self.daemon_pids()

    def daemon_pids(self):
        return find_pids(lambda argv: self.mnt in argv and argv[0].endswith(self.daemon_name()))

    def daemon_name(self):
        return self.name

    def counters(self):
        """Client counters summed over this target's mounted clients, e.g.
        {"rpc": round trips, "recalls": recalls received}, or None."""
        return None

    # --- helpers ----------------------------------------------------------
    def make_ext4(self, mnt):
        img = self.images()[0]
        os.makedirs(os.path.dirname(img), exist_ok=True)
        rm_image(img)
        sh(["truncate", "-s", self.env.img_size, img])
        sh(["mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", img])
        os.makedirs(mnt, exist_ok=True)
        # -o loop sets autoclear: the loop device goes away with the mount.
        sh(["mount", "-o", "loop", img, mnt])

    def export_dir(self):
        self.backing = os.path.join(self.env.workdir, "mnt", f"backing-{self.name}")
        self.make_ext4(self.backing)
        export = os.path.join(self.backing, "export")
        os.makedirs(export, exist_ok=True)
        return export

    def start_relay(self, port):
        """Returns the port clients should use: port itself, or a relay in front of it."""
        if self.env.rtt_ms <= 0:
            return port
        lport = free_port()
        self.relay = spawn([self.env.relay, f"127.0.0.1:{lport}", f"127.0.0.1:{port}",
                            str(self.env.rtt_ms)], self.env.log(f"relay-{self.name}"))
        self.servers.append(self.relay)
        wait_for(lambda: port_open(lport), "relay")
        return lport

    def wait_daemon_exit(self, pids):
        end = time.time() + 30
        while time.time() < end and any(alive(p) for p in pids):
            time.sleep(0.02)


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def stop(p, timeout=20):
    if p.poll() is not None:
        return
    p.terminate()
    try:
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def rm_image(img):
    if os.path.isdir(img + ".meta"):
        shutil.rmtree(img + ".meta", ignore_errors=True)
    if os.path.exists(img):
        os.unlink(img)


# ----------------------------------------------------------------------------
class Ext4(Target):
    name = "ext4"

    def setup(self):
        self.make_ext4(self.mnt)

    def mount_second(self):
        return self.mnt  # one kernel: the "second client" is a second process on the mount

    def teardown(self):
        umount(self.mnt)
        rm_image(self.images()[0])

    def daemon_pids(self):
        return []


class Bindfs(Target):
    name = "bindfs"

    def setup(self):
        if not shutil.which("bindfs"):
            raise Skip("bindfs is not installed")
        self.export = self.export_dir()
        self.mount()

    def mount(self):
        os.makedirs(self.mnt, exist_ok=True)
        sh(["bindfs", self.export, self.mnt])

    def umount(self):
        pids = self.daemon_pids()
        umount(self.mnt)
        self.wait_daemon_exit(pids)


class Cohfs(Target):
    """Authenticated and encrypted (serve/mount --key); CohfsInsecure is the same
    in clear, to measure what the secure channel costs."""
    name = "cohfs"
    networked = True
    secure = True

    def __init__(self, env):
        super().__init__(env)
        self.mnt2 = None  # the second client's mount point while one is mounted

    def binary(self):
        return self.env.cohfs

    def setup(self):
        if not self.binary() or not os.access(self.binary(), os.X_OK):
            raise Skip(f"{self.binary()} does not exist (build cohfs first)")
        img = self.images()[0]
        os.makedirs(os.path.dirname(img), exist_ok=True)
        rm_image(img)
        sh(["truncate", "-s", self.env.img_size, img])
        sh([self.binary(), "format", img, "--force"])
        self.key = os.path.join(self.env.workdir, f"{self.name}.key")
        if self.secure:
            sh([self.binary(), "keygen", self.key, "--force"])
        port = free_port()
        self.server = spawn([self.binary(), "serve", img, "--listen", f"127.0.0.1:{port}"]
                            + self.key_flags(server=True), self.env.log(f"{self.name}-serve"))
        self.servers.append(self.server)
        wait_for(lambda: port_open(port) or self.server.poll() is not None, "cohfs serve")
        if self.server.poll() is not None:
            raise RuntimeError(f"cohfs serve exited; see {self.env.log(f'{self.name}-serve')}")
        self.port = self.start_relay(port)
        self.mount()

    def mount(self):
        self.mount_client(self.mnt, "cohfs-mount")

    def umount(self):
        self.umount_client(self.mnt)

    def mount_second(self):
        """A second `cohfs mount` of the same server (through the same relay)."""
        if not self.mnt2:
            self.mnt2 = self.mnt + "-b"
            self.mount_client(self.mnt2, "cohfs-mount-b")
        return self.mnt2

    def umount_second(self):
        if self.mnt2:
            self.umount_client(self.mnt2)
            self.mnt2 = None

    def teardown(self):
        self.umount_second()
        super().teardown()

    def key_flags(self, server):
        if self.secure:
            return ["--key", self.key]
        return ["--insecure"] if server else []

    def mount_client(self, mnt, logname):
        os.makedirs(mnt, exist_ok=True)
        sh([self.binary(), "mount", f"127.0.0.1:{self.port}", mnt, "--log",
            self.env.log(logname.replace("cohfs", self.name))] + self.key_flags(server=False))
        if not is_mountpoint(mnt):
            raise RuntimeError(f"cohfs mount returned but nothing is mounted at {mnt}")

    def umount_client(self, mnt):
        pids = self.client_pids(mnt)
        umount(mnt)
        self.wait_daemon_exit(pids)

    def clients(self):
        return [self.mnt] + ([self.mnt2] if self.mnt2 else [])

    def client_pids(self, mnt):
        return find_pids(lambda argv: len(argv) > 3 and argv[1] == "mount" and mnt in argv
                         and argv[0].endswith("cohfs"))

    def daemon_pids(self):
        return self.client_pids(self.mnt)

    def fs_pids(self):
        daemons = [pid for mnt in self.clients() for pid in self.client_pids(mnt)]
        return [p.pid for p in self.servers] + daemons

    def counters(self):
        """Round trips and recalls, summed over the mounted clients; None if a
        client's `cohfs stats` fails."""
        total = {}
        for mnt in self.clients():
            p = subprocess.run([self.binary(), "stats", mnt], capture_output=True, text=True)
            values = dict(line.split(None, 1) for line in p.stdout.splitlines() if " " in line)
            # Round trips a request waited for; commits of the writeback log and lock
            # releases ride along without a wait (older binaries: every request).
            rpc = next((int(values[k]) for k in ("round_trips", "rpc_total") if k in values), None)
            if p.returncode != 0 or rpc is None:
                return None
            total["rpc"] = total.get("rpc", 0) + rpc
            if "fuse_total" in values:  # FUSE requests the client answered
                total["fuse"] = total.get("fuse", 0) + int(values["fuse_total"])
            if "recalls" in values:  # older binaries have none
                total["recalls"] = total.get("recalls", 0) + int(values["recalls"])
        return total


class CohfsBase(Cohfs):
    """The same with another binary (--cohfs-base): before and after in one run."""
    name = "cohfs-base"

    def binary(self):
        return self.env.cohfs_base

    def key_flags(self, server):
        # In clear, as the binary can: one from before keys knows no --insecure.
        usage = subprocess.run([self.binary()], capture_output=True, text=True).stderr
        return ["--insecure"] if server and "keygen" in usage else []


class PassthroughLl(Target):
    """libfuse's passthrough_ll, compiled from the example source Debian's
    libfuse3-dev installs, over a directory on an ext4 image, with its best
    caching: kernel page cache kept, day-long entry and attribute timeouts,
    writeback cache."""
    name = "passthrough_ll"
    SRC = "/usr/share/doc/libfuse3-dev/examples/passthrough_ll.c"
    OPTS = "cache=always,writeback"

    def setup(self):
        if not os.path.exists(self.SRC):
            raise Skip(f"{self.SRC} is missing (install libfuse3-dev)")
        self.binary = os.path.join(self.env.workdir, "tools", "passthrough_ll")
        if not os.path.exists(self.binary) or os.path.getmtime(self.binary) < os.path.getmtime(self.SRC):
            # its passthrough_helpers.h sits beside it, where #include "..." looks first
            flags = sh(["pkg-config", "--cflags", "--libs", "fuse3"]).stdout.split()
            sh(["cc", "-O2", "-Wall", "-o", self.binary, self.SRC, *flags])
        self.export = self.export_dir()
        self.mount()

    def mount(self):
        os.makedirs(self.mnt, exist_ok=True)
        # It keeps an O_PATH fd open per inode the kernel knows: as many as we may
        # (a hard limit below the tree's inodes makes its untar fail with EMFILE).
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        sh(["prlimit", f"--nofile={nofile}", self.binary, "-o", f"source={self.export},{self.OPTS}",
            self.mnt])

    def umount(self):
        pids = self.daemon_pids()
        umount(self.mnt)
        self.wait_daemon_exit(pids)


class Sshfs(Target):
    name = "sshfs"
    networked = True
    # FUSE and sshfs cache knobs turned up (sshfs 3.7): kernel page cache kept across
    # opens, long attribute/entry/negative timeouts, a large directory cache.
    CACHE_OPTS = ("kernel_cache,entry_timeout=3600,attr_timeout=3600,negative_timeout=3600,"
                  "dir_cache=yes,dcache_timeout=3600,dcache_max_size=1000000")
    cache = False

    def setup(self):
        if not shutil.which("sshfs") or not os.path.exists("/usr/sbin/sshd"):
            raise Skip("sshfs or openssh-server is not installed")
        self.export = self.export_dir()
        d = self.sshdir = os.path.join(self.env.workdir, "ssh")
        os.makedirs(d, mode=0o700, exist_ok=True)
        os.makedirs("/run/sshd", exist_ok=True)
        for f in ("host_key", "id_bench"):
            for suffix in ("", ".pub"):
                if os.path.exists(f"{d}/{f}{suffix}"):
                    os.unlink(f"{d}/{f}{suffix}")
            sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", f"{d}/{f}"])
        shutil.copy(f"{d}/id_bench.pub", f"{d}/authorized_keys")
        port = free_port()
        with open(f"{d}/sshd_config", "w") as f:
            f.write(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {d}/host_key
PidFile none
AuthorizedKeysFile {d}/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
Subsystem sftp /usr/lib/openssh/sftp-server
""")
        self.sshd = spawn(["/usr/sbin/sshd", "-D", "-e", "-f", f"{d}/sshd_config"],
                          self.env.log(f"sshd-{self.name}"))
        self.servers.append(self.sshd)
        wait_for(lambda: port_open(port) or self.sshd.poll() is not None, "sshd")
        if self.sshd.poll() is not None:
            raise RuntimeError(f"sshd exited; see {self.env.log('sshd-' + self.name)}")
        self.port = self.start_relay(port)
        self.mount()

    def mount(self):
        os.makedirs(self.mnt, exist_ok=True)
        opts = (f"IdentityFile={self.sshdir}/id_bench,StrictHostKeyChecking=no,"
                "UserKnownHostsFile=/dev/null,BatchMode=yes,LogLevel=ERROR")
        if self.cache:
            opts += "," + self.CACHE_OPTS
        sh(["sshfs", "-p", str(self.port), "-o", opts, f"root@127.0.0.1:{self.export}", self.mnt])

    def umount(self):
        pids = self.daemon_pids()
        umount(self.mnt)
        self.wait_daemon_exit(pids)

    def daemon_pids(self):
        return find_pids(lambda argv: bool(argv) and argv[0].endswith("sshfs") and self.mnt in argv)


class SshfsCache(Sshfs):
    name = "sshfs-cache"
    cache = True


class Glusterfs(Target):
    name = "glusterfs"
    volume = "cohbench"
    networked = True  # but not through the relay: measured at loopback only (see main)

    def setup(self):
        if not shutil.which("glusterd") or not shutil.which("glusterfs"):
            raise Skip("glusterfs-server/glusterfs-client are not installed")
        if find_pids(lambda argv: bool(argv) and os.path.basename(argv[0]) == "glusterd"):
            raise Skip("a glusterd is already running on this machine; not touching it")
        # gluster refuses "127.0.0.1" and "localhost" for a brick; this machine's
        # hostname works if it resolves to a loopback address (then so is the traffic)
        import socket
        self.host = socket.gethostname()
        try:
            addr = socket.gethostbyname(self.host)
        except OSError:
            addr = "?"
        if not addr.startswith("127."):
            raise Skip(f"gluster needs a brick host other than localhost, and hostname "
                       f"{self.host} resolves to {addr}, not to loopback")
        export = self.export_dir()
        self.brick = os.path.join(export, "brick")
        self.glusterd = spawn(["glusterd", "-N", "-l", self.env.log("glusterd")],
                              self.env.log("glusterd-out"))
        self.servers.append(self.glusterd)
        wait_for(lambda: self.gluster("volume", "list", check=False).returncode == 0,
                 "glusterd", timeout=60, step=0.5)
        # a volume left over by a killed run
        if self.volume in self.gluster("volume", "list").stdout.split():
            self.gluster("volume", "stop", self.volume, "force", check=False)
            self.gluster("volume", "delete", self.volume, check=False)
        self.gluster("volume", "create", self.volume, f"{self.host}:{self.brick}", "force")
        self.gluster("volume", "start", self.volume)
        self.mount()

    def gluster(self, *args, check=True):
        return sh(["gluster", "--mode=script", *args], check=check, timeout=120)

    def mount(self):
        os.makedirs(self.mnt, exist_ok=True)
        sh(["glusterfs", f"--volfile-server={self.host}", f"--volfile-id={self.volume}",
            f"--log-file={self.env.log('glusterfs-client')}", self.mnt])
        wait_for(lambda: is_mountpoint(self.mnt), "glusterfs mount")

    def umount(self):
        pids = self.daemon_pids()
        umount(self.mnt)
        self.wait_daemon_exit(pids)

    def daemon_pids(self):
        return find_pids(lambda argv: bool(argv) and argv[0].endswith("glusterfs") and self.mnt in argv)

    def fs_pids(self):
        # glusterd + the brick (glusterfsd) and helper daemons it forks, + the client
        return find_pids(lambda argv: bool(argv) and os.path.basename(argv[0]).startswith("gluster")
                         and os.path.basename(argv[0]) != "gluster")

    def teardown(self):
        self.umount()
        if self.glusterd.poll() is None:
            self.gluster("volume", "stop", self.volume, "force", check=False)
            self.gluster("volume", "delete", self.volume, check=False)
        for pid in find_pids(lambda argv: bool(argv) and "glusterfsd" in argv[0] and
                             any(self.env.workdir in a for a in argv)):
            try:
                os.kill(pid, 15)
            except ProcessLookupError:
                pass
        super().teardown()


class CohfsInsecure(Cohfs):
    name = "cohfs-insecure"
    secure = False


ALL = {c.name: c for c in (Ext4, PassthroughLl, Cohfs, CohfsInsecure, CohfsBase, Sshfs,
                            SshfsCache, Bindfs, Glusterfs)}
