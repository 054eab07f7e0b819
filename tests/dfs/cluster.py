"""A GlusterFS volume on this machine, mounted by two "hosts" (issue 20).

One server and two clients, each in its own network, UTS and mount
namespace: the server's namespace holds a bridge (10.77.0.1/24) with one
veth pair per client (10.77.0.2, 10.77.0.3); these addresses exist only in
namespaces created here, so no traffic leaves them. Each client has its own
hostname (flhost1, flhost2) and mounts the volume on the same path in its
own mount namespace, through its own FUSE client process (glusterfs), so
the two clients share nothing but the server, like two machines.

glusterd runs in the server's mount namespace with private directories
over /var/lib/glusterd, /var/log/glusterfs and /run: nothing of it is left
on this machine afterwards. down() kills exactly the processes that live in
the network namespaces created here (found by their /proc/PID/ns/net
inode), which takes the namespaces and the FUSE mounts with them.

Coherence: with Gluster's stock settings, data read under the lock can be
stale (client-side caches); the volume turns every performance translator
off (VOLUME_OPTIONS) and the clients mount with direct-io-mode=enable,
attribute-timeout=0, entry-timeout=0 and negative-timeout=0 (MOUNT_OPTIONS).
docs/filesystems.md says why.
"""

import os
import shutil
import signal
import subprocess
import tempfile
import time

SERVER_ADDR = "10.77.0.1"
CLIENT_ADDRS = ("10.77.0.2", "10.77.0.3")
HOSTNAMES = ("flhost1", "flhost2")
VOLUME = "flvol"

# Every client-side cache off: a translator that caches data, attributes or
# directory entries lets a client read what another wrote before the lock
# moved to it.
VOLUME_OPTIONS = [
    ("performance.quick-read", "off"),
    ("performance.io-cache", "off"),
    ("performance.read-ahead", "off"),
    ("performance.write-behind", "off"),
    ("performance.stat-prefetch", "off"),
    ("performance.open-behind", "off"),
    ("performance.readdir-ahead", "off"),
    ("performance.nl-cache", "off"),
    ("performance.strict-o-direct", "on"),
    # A partitioned client's locks are freed after the server's TCP timeout
    # (42 s stock); a killed client's at once (its connection closes).
    ("network.ping-timeout", "5"),
    ("server.tcp-user-timeout", "5"),
    # After a partition heals, a client with strict-locks off silently
    # re-opens its descriptors without the lock another host now holds;
    # with it on they fail (EBADFD), so the old holder learns it lost.
    ("client.strict-locks", "on"),
]
MOUNT_OPTIONS = ["--direct-io-mode=enable", "--attribute-timeout=0", "--entry-timeout=0",
                 "--negative-timeout=0"]

TOOLS = ("glusterd", "gluster", "glusterfs", "unshare", "nsenter", "ip")


class Skip(Exception):
    """The lane cannot run here (not root, no FUSE, tools missing)."""


class SetupError(Exception):
    pass


def why_not():
    """None when the lane can run, else the reason it cannot."""
    if os.geteuid() != 0:
        return "needs root (network, UTS and mount namespaces, FUSE mounts)"
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing (no FUSE in this kernel or container)"
    missing = [t for t in TOOLS if not shutil.which(t)]
    if missing:
        return ("missing %s (Debian: glusterfs-server glusterfs-client iproute2 util-linux)"
                % ", ".join(missing))
    return None


def _run(argv, timeout=60, check=True):
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    if check and p.returncode != 0:
        raise SetupError("%s: exit %d: %s" % (" ".join(argv), p.returncode,
                                               (p.stderr or p.stdout).decode(errors="replace")
                                               .strip()))
    return p


class Cluster:
    def __init__(self, note=print, stock=False):
        self.note = note
        # stock=True: Gluster's default caching, to show that it loses
        # updates made under a lock (gluster_lane.py --stock); never in CI.
        self.stock = stock
        self.mount_options = [] if stock else MOUNT_OPTIONS
        self.dir = tempfile.mkdtemp(prefix="fl-dfs-")
        os.chmod(self.dir, 0o755)
        self.mnt = os.path.join(self.dir, "mnt")  # the volume, on both clients
        self.brick = os.path.join(self.dir, "brick")
        self.logs = os.path.join(self.dir, "log")
        for d in (self.mnt, self.brick, self.logs, os.path.join(self.dir, "lib")):
            os.mkdir(d)
        self.anchors = []  # unshare processes that keep each namespace set alive
        self.pids = {}  # "server"/"c1"/"c2" -> pid of a process inside
        self.netns = set()
        self.glusterd = None
        self.mounted = []

    # -- namespaces --------------------------------------------------------

    def _anchor(self, name):
        # unshare --fork runs "sleep" as its child inside the new namespaces;
        # the child's pid is read from a pipe so no guessing is needed.
        p = subprocess.Popen(["unshare", "--net", "--uts", "--mount", "--propagation", "private",
                              "--fork", "sh", "-c", "echo $$; exec sleep 100000"],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        self.anchors.append(p)
        line = p.stdout.readline().strip()
        if not line:
            err = p.stderr.read().decode(errors="replace").strip()
            raise Skip("cannot create network/UTS/mount namespaces here: %s" % err)
        pid = int(line)
        self.pids[name] = pid
        self.netns.add(os.readlink("/proc/%d/ns/net" % pid))
        return pid

    def ns(self, name):
        """argv prefix that runs a command inside host `name`'s namespaces."""
        return ["nsenter", "-t", str(self.pids[name]), "-n", "-u", "-m", "--"]

    def sh(self, name, script, timeout=60):
        return _run(self.ns(name) + ["sh", "-ec", script], timeout=timeout)

    def up(self):
        t0 = time.monotonic()
        srv = self._anchor("server")
        c = [self._anchor("c1"), self._anchor("c2")]
        # The veth pairs are made inside the server's namespace with the peer
        # put straight into the client's: nothing is created in this
        # machine's own network namespace, not even for a moment.
        for i, pid in enumerate(c, 1):
            try:
                _run(self.ns("server") + ["ip", "link", "add", "s%d" % i, "type", "veth", "peer",
                                          "name", "c%d" % i, "netns", str(pid)])
            except SetupError as e:
                raise Skip("cannot create a veth pair here: %s" % e)
        self.sh("server", """
            hostname flserver
            ip link set lo up
            ip link add br0 type bridge
            ip link set s1 master br0; ip link set s2 master br0
            ip addr add {a}/24 dev br0
            ip link set br0 up; ip link set s1 up; ip link set s2 up
            mount -t tmpfs -o mode=755 tmpfs /run
            mkdir -p /var/lib/glusterd /var/log/glusterfs
            mount --bind {d}/lib /var/lib/glusterd
            mount --bind {d}/log /var/log/glusterfs
        """.format(a=SERVER_ADDR, d=self.dir))
        for i in (1, 2):
            self.sh("c%d" % i, """
                hostname {h}
                ip link set lo up
                ip addr add {a}/24 dev c{i}
                ip link set c{i} up
            """.format(h=HOSTNAMES[i - 1], a=CLIENT_ADDRS[i - 1], i=i))
        self.glusterd = subprocess.Popen(
            self.ns("server") + ["glusterd", "-N", "-l", os.path.join(self.logs, "glusterd.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cli = self.ns("server") + ["gluster", "--mode=script"]
        deadline = time.monotonic() + 30
        while _run(cli + ["volume", "list"], check=False).returncode != 0:
            if self.glusterd.poll() is not None or time.monotonic() > deadline:
                raise SetupError("glusterd did not come up; see %s" % self.logs)
            time.sleep(0.1)
        _run(cli + ["volume", "create", VOLUME, "%s:%s" % (SERVER_ADDR, self.brick), "force"])
        # One "volume set ... group" call instead of one call per option:
        # group files live in glusterd's working directory (ours, private).
        os.makedirs(os.path.join(self.dir, "lib", "groups"), exist_ok=True)
        with open(os.path.join(self.dir, "lib", "groups", "fl-coherent"), "w") as f:
            f.write("".join("%s=%s\n" % kv for kv in VOLUME_OPTIONS))
        if not self.stock:
            _run(cli + ["volume", "set", VOLUME, "group", "fl-coherent"])
        _run(cli + ["volume", "start", VOLUME])
        for i in (1, 2):
            name = "c%d" % i
            _run(self.ns(name) + ["glusterfs", "--volfile-server=" + SERVER_ADDR,
                                  "--volfile-id=" + VOLUME] + self.mount_options +
                 ["-l", os.path.join(self.logs, "client%d.log" % i), self.mnt])
            self.mounted.append(name)
            # The mount must be the volume, not the empty directory beneath.
            fstype = self.sh(name, "stat -f -c %T " + self.mnt).stdout.decode().strip()
            if fstype not in ("fuseblk", "fuse"):
                raise SetupError("client %d: %s is %s, not the FUSE mount" % (i, self.mnt, fstype))
        # Both clients see one file system: a file made by one is read by the other.
        self.sh("c1", "echo flhost1 > %s/.probe" % self.mnt)
        seen = self.sh("c2", "cat %s/.probe" % self.mnt).stdout.decode().strip()
        if seen != "flhost1":
            raise SetupError("client 2 does not see client 1's file (read %r)" % seen)
        self.note("gluster: volume %s up, mounted by %s and %s on %s (%.1f s)"
                  % (VOLUME, HOSTNAMES[0], HOSTNAMES[1], self.mnt, time.monotonic() - t0))

    def client_pid(self, name):
        """pid of host `name`'s FUSE client process (glusterfs)."""
        net = os.readlink("/proc/%d/ns/net" % self.pids[name])
        for pid in self._pids_in({net}):
            try:
                with open("/proc/%d/comm" % pid) as f:
                    if f.read().strip() == "glusterfs":
                        return pid
            except OSError:
                pass
        return None

    def remount(self, name):
        """Mount the volume again on host `name` (after its client was killed)."""
        i = 1 if name == "c1" else 2
        _run(self.ns(name) + ["umount", "-l", self.mnt], check=False)
        _run(self.ns(name) + ["glusterfs", "--volfile-server=" + SERVER_ADDR,
                              "--volfile-id=" + VOLUME] + self.mount_options +
             ["-l", os.path.join(self.logs, "client%d.log" % i), self.mnt])

    @staticmethod
    def _pids_in(netns):
        out = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                if os.readlink("/proc/%s/ns/net" % d) in netns:
                    out.append(int(d))
            except OSError:
                pass
        return out

    def down(self, keep=False):
        # Every process in our network namespaces: the anchors' children,
        # glusterd, the brick, both FUSE clients and any test process left.
        # A killed process stays listed until its parent reaps it (init, for
        # the daemons): wait until none is left, so the next run starts clean.
        # A dying process loses its namespace links before it is gone, so
        # every pid killed is also waited for until /proc no longer lists it.
        deadline = time.monotonic() + 20
        killed = set()
        while True:
            pids = [p for p in self._pids_in(self.netns) if p != os.getpid()]
            killed.update(pids)
            killed = {p for p in killed if os.path.exists("/proc/%d" % p)}
            if not killed:
                break
            if time.monotonic() > deadline:
                self.note("gluster: processes still alive after teardown: %s" % sorted(killed))
                break
            for p in pids:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            for a in self.anchors + ([self.glusterd] if self.glusterd else []):
                a.poll()  # reap our own children
            time.sleep(0.1)
        for p in self.anchors:
            try:
                p.kill()
            except ProcessLookupError:
                pass
            p.wait()
        if self.glusterd:
            self.glusterd.wait()
        if not keep:
            shutil.rmtree(self.dir, ignore_errors=True)
