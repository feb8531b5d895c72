"""A real Kubernetes node on this machine: containerd + runc + CNI bridge, kubelet and kube-proxy, joined to a
control plane started for it (tests/support/controlplane.py with `node_ip`), plus CoreDNS as a pod.

Addresses all come from 198.18.0.0/15 (set aside for benchmarking, never routed on the internet and not
one of the private ranges): the node (and the apiserver) on 198.18.0.1/32 on `lo`, pods on the bridge
`kubechat0` in 198.18.1.0/24, Services in 198.19.0.0/16. Pods have a route to 198.18.0.0/15 only (no default
route) and nothing is masqueraded, so no pod packet leaves the machine. kube-proxy runs in nftables mode: its
rules live in a table of its own that `stop` deletes whole.

One node per machine at a time (fixed addresses, one bridge, kube-proxy owns the host's Service rules): a
lock file (~/.cache/kubechat/node/lock) is held by the process that started the node, and by the detached
node's own processes for `hack/node up`. `stop` removes everything the node made: processes (containerd's
shims included), mounts, the bridge and pod network namespaces, nftables/iptables rules, cgroups, the lo
address and the sysctls it turned on; `leftovers()` says what, if anything, survived.

Images (kubechat's, the pause, CoreDNS and metrics-server images) persist in containerd's content store under
~/.cache/kubechat/node/containerd between runs; everything else lives in the run's state directory.

Only the standard library is used here, so `hack/node` runs it with any Python 3.11.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tests.support.controlplane import (
    NODE_IP,
    ControlPlane,
    alive,
    kill_group,
    kill_recorded,
    sign_certificate,
    start_detached,
    state_dir_cli,
)
from tests.support.procs import REPO_ROOT, cache_dir, die_with_parent

NODE_NAME = "kubechat-node"
BRIDGE = "kubechat0"
POD_SUBNET = "198.18.1.0/24"
POD_GATEWAY = "198.18.1.1"
ADDRESS_RANGE = "198.18.0.0/15"
DNS_SERVICE_IP = "198.19.0.10"
DNS_PORT = 1053  # CoreDNS runs as nobody with no capabilities: no port below 1024; the Service maps 53 to it
CLUSTER_DOMAIN = "cluster.local"
CGROUP_ROOT = "kubechat-node"
NFT_TABLE = "kubechat-node"  # our own guard rules; kube-proxy's table is "kube-proxy"
CNI_BIN_DIR = "/usr/lib/cni"
PAUSE_IMAGE = "localhost/kubechat-pause:1"
COREDNS_IMAGE = "localhost/kubechat-coredns:1"
METRICS_SERVER_IMAGE = "localhost/kubechat-metrics-server:1"
NETNS_DIR = Path("/var/run/netns")
OUR_SOCKET_TAIL = "/node/containerd/containerd.sock"  # Cluster puts the node's files in <state>/node
# Sysctls the node needs (forwarding between the bridge and the host's Service rules; bridged pod-to-pod
# traffic through conntrack, so a pod reaching a Service backed by a pod on the same bridge gets its answer
# from the Service address). Their previous values are restored by `stop`.
SYSCTLS = {"net/ipv4/ip_forward": "1", "net/bridge/bridge-nf-call-iptables": "1"}
PACKAGES = ("containerd", "runc", "containernetworking-plugins", "nftables", "iptables", "conntrack")
NODE_COMPONENTS = ("containerd", "kubelet", "kube-proxy")


class NodeError(RuntimeError):
    """The node did not come up, or something of it outlived `stop`."""


def node_cache() -> Path:
    return cache_dir("node")


def _run(*args: str | Path, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command; with `check`, a failure raises NodeError carrying its stderr."""
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, input=input)
    if check and result.returncode != 0:
        raise NodeError(f"{' '.join(map(str, args))} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def missing_packages() -> list[str]:
    """The Debian packages of PACKAGES that are not installed."""
    return [p for p in PACKAGES if _run("dpkg", "-s", p, check=False).returncode != 0]


@contextlib.contextmanager
def node_lock(timeout: float = 1800) -> Iterator[int]:
    """Hold the machine's node lock (waiting up to `timeout` seconds for another run's node); yields its fd,
    which a detached node hands to its processes so the lock lives as long as they do."""
    fd = os.open(node_cache() / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise NodeError(
                        "another real node runs on this machine (hack/node down stops a detached one)"
                    ) from None
                time.sleep(2)
        yield fd
    finally:
        os.close(fd)


# -- what stop removes, and what leftovers() looks for ------------------------------------------------------


def _mounts_under(*roots: Path) -> list[str]:
    """Mount points at or below any of `roots`, deepest first."""
    prefixes = [str(r).rstrip("/") for r in roots]
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if any(point == p or point.startswith(p + "/") for p in prefixes):
            points.append(point)
    return sorted(set(points), key=len, reverse=True)


def _pod_netns() -> list[Path]:
    return sorted(NETNS_DIR.glob("cni-*")) if NETNS_DIR.is_dir() else []


def _shim_pids(containerd_socket: Path | None) -> list[int]:
    """containerd's shims for our containerd (they daemonize, so no process group holds them). Without a
    socket: every shim of any kubechat node (their sockets end in OUR_SOCKET_TAIL), for cleaning up after
    a killed run."""
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if not args or not args[0].endswith(b"containerd-shim-runc-v2"):
            continue
        address = args[args.index(b"-address") + 1].decode() if b"-address" in args else ""
        if address == str(containerd_socket) if containerd_socket else address.endswith(OUR_SOCKET_TAIL):
            pids.append(int(proc.name))
    return pids


def _cgroup_dirs() -> list[Path]:
    """The node's cgroup tree in every cgroup v1 hierarchy (or the v2 one), deepest first."""
    tops = [d / CGROUP_ROOT for d in Path("/sys/fs/cgroup").iterdir() if (d / CGROUP_ROOT).is_dir()]
    if Path(f"/sys/fs/cgroup/{CGROUP_ROOT}").is_dir():
        tops.append(Path(f"/sys/fs/cgroup/{CGROUP_ROOT}"))
    dirs = [Path(p) for top in tops for p, _, _ in os.walk(top)]
    return sorted(dirs, key=lambda p: len(p.parts), reverse=True)


def _cgroup_pids() -> set[int]:
    pids: set[int] = set()
    for d in _cgroup_dirs():
        with contextlib.suppress(OSError):
            pids.update(int(p) for p in (d / "cgroup.procs").read_text().split())
    return pids


def _iptables_kube_chains(tool: str) -> dict[str, list[str]]:
    """The KUBE-* chains (kubelet's canaries, kube-proxy's legacy ones) in each table, for one of
    iptables/ip6tables."""
    found: dict[str, list[str]] = {}
    for table in ("filter", "nat", "mangle"):
        listing = _run(tool, "-w", "-t", table, "-S", check=False).stdout
        chains = re.findall(r"^-N (KUBE-\S+)$", listing, re.M)
        if chains:
            found[table] = chains
    return found


def _nft_tables() -> list[str]:
    listing = _run("nft", "list", "tables", check=False).stdout
    return [
        line.split(None, 1)[1]
        for line in listing.splitlines()
        if line.split()[-1:] in (["kube-proxy"], [NFT_TABLE])
    ]


def _all_nft_tables() -> set[str]:
    return {line.split(None, 1)[1] for line in _run("nft", "list", "tables", check=False).stdout.splitlines()}


def _remember_nft_tables() -> None:
    """Note the machine's nftables tables before a node first runs on it (kept: a killed run's tables must
    not count as the machine's own)."""
    note = node_cache() / "nft-tables-before.json"
    if not note.exists():
        note.write_text(json.dumps(sorted(_all_nft_tables())))


def _delete_new_empty_tables() -> None:
    """The kubelet's iptables calls create the standard tables (ip/ip6 filter, nat, mangle) through
    iptables-nft; once our chains are gone, delete those that did not exist before and hold no rule."""
    note = node_cache() / "nft-tables-before.json"
    if not note.exists():
        return
    before = set(json.loads(note.read_text()))
    for table in _all_nft_tables() - before:
        listing = json.loads(_run("nft", "-j", "list", "table", *table.split(), check=False).stdout or "{}")
        if not any("rule" in item for item in listing.get("nftables", [])):
            _run("nft", "delete", "table", *table.split(), check=False)


def leftovers(state_dir: Path | None = None) -> list[str]:
    """What of a node is still on this machine: empty once `stop` (or `cleanup`) has done its job."""
    found = []
    roots = [node_cache() / "containerd"] + ([state_dir] if state_dir else [])
    found += [f"mount {m}" for m in _mounts_under(*roots)]
    found += [f"pod network namespace {n}" for n in _pod_netns()]
    found += [f"containerd shim pid {p}" for p in _shim_pids(None)]
    found += [f"process {p} in the node's cgroups" for p in _cgroup_pids()]
    found += [f"cgroup {d}" for d in _cgroup_dirs()]
    if _run("ip", "link", "show", BRIDGE, check=False).returncode == 0:
        found.append(f"link {BRIDGE}")
    if f" {NODE_IP}/32 " in _run("ip", "-o", "addr", "show", "dev", "lo").stdout:
        found.append(f"address {NODE_IP}/32 on lo")
    found += [f"nftables table {t}" for t in _nft_tables()]
    for tool in ("iptables", "ip6tables"):
        found += [f"{tool} -t {t} chain {c}" for t, cs in _iptables_kube_chains(tool).items() for c in cs]
    return found


def cleanup(state_dir: Path | None = None, containerd_socket: Path | None = None) -> None:
    """Remove whatever a node (running or killed) left: its containers' processes and shims, mounts, pod
    network namespaces, cgroups, the bridge, the lo address and the nftables/iptables rules. Call it only
    with the node lock held and the node's own processes stopped."""
    for _ in range(3):  # container processes are in the cgroups; the shims would restart none, but be sure
        pids = _cgroup_pids() | set(_shim_pids(containerd_socket))
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while any(alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
    for point in _mounts_under(*([node_cache() / "containerd"] + ([state_dir] if state_dir else []))):
        _run("umount", "-l", point, check=False)
    for netns in _pod_netns():
        _run("umount", "-l", netns, check=False)
        with contextlib.suppress(OSError):
            netns.unlink()
    for d in _cgroup_dirs():
        with contextlib.suppress(OSError):
            d.rmdir()
    _run("ip", "link", "delete", BRIDGE, check=False)
    _run("ip", "addr", "delete", f"{NODE_IP}/32", "dev", "lo", check=False)
    for table in _nft_tables():
        _run("nft", "delete", "table", *table.split(), check=False)
    # containerd 1.6 keeps its shims' sockets in /run/containerd/s whatever its state directory.
    for directory in ("/run/containerd/s", "/run/containerd"):
        with contextlib.suppress(OSError):
            os.rmdir(directory)
    for tool in ("iptables", "ip6tables"):
        for table, chains in _iptables_kube_chains(tool).items():
            # Rules elsewhere that jump to a KUBE- chain first, then the chains themselves.
            for rule in _run(tool, "-w", "-t", table, "-S").stdout.splitlines():
                if rule.startswith("-A ") and not rule.startswith("-A KUBE-") and "KUBE-" in rule:
                    _run(tool, "-w", "-t", table, *shlex.split(rule.replace("-A ", "-D ", 1)), check=False)
            for chain in chains:
                _run(tool, "-w", "-t", table, "-F", chain, check=False)
            for chain in chains:
                _run(tool, "-w", "-t", table, "-X", chain, check=False)
    _delete_new_empty_tables()


# -- the node -----------------------------------------------------------------------------------------------


class Node:
    """A real node joined to `plane` (a ControlPlane started with node_ip=NODE_IP), its files in `state_dir`.

    With `detach=False` (tests) its processes die with the thread that started them; `stop` must still run to
    remove what is not a process. With `detach=True` (`hack/node up`) they outlive the starter and `lock_fd`
    (the node lock) is handed to them.
    """

    def __init__(
        self,
        plane: ControlPlane,
        state_dir: Path,
        bin_dir: Path,
        *,
        detach: bool = False,
        lock_fd: int | None = None,
    ) -> None:
        self.plane = plane
        self.state_dir = Path(state_dir)
        self.bin_dir = Path(bin_dir)
        self.detach = detach
        self.lock_fd = lock_fd
        self.logs = self.state_dir / "logs"
        self.pki = self.state_dir / "pki"
        self.containerd_root = node_cache() / "containerd"
        self.containerd_socket = self.state_dir / "containerd" / "containerd.sock"
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._pgid: int | None = None
        self.sysctls_before: dict[str, str] = {}

    # -- what tests use -------------------------------------------------------------------------------------

    def ctr(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """containerd's `ctr` in the k8s.io namespace (the one the kubelet's pods use)."""
        return _run("ctr", "--address", self.containerd_socket, "-n", "k8s.io", *args, check=check)

    def images(self) -> set[str]:
        return set(self.ctr("images", "ls", "-q").stdout.split())

    def remove_image(self, name: str) -> None:
        """Remove `name` and every other reference to the same image (the CRI plugin adds its own: the image
        id, repo digests), synchronously. Re-importing under the same name otherwise leaves the old layers and
        snapshots behind, referenced or waiting for a garbage collection that containerd, up only while tests
        run, rarely gets to: each replaced server image kept ~13 GB."""
        rows = [line.split() for line in self.ctr("images", "ls").stdout.splitlines()[1:] if line.strip()]
        digest = next((row[2] for row in rows if row[0] == name), None)
        if digest:
            self.ctr("images", "rm", "--sync", *[row[0] for row in rows if row[2] == digest])

    def containers(self) -> list[str]:
        """The containers containerd holds for pods (sandboxes included)."""
        return self.ctr("containers", "ls", "-q").stdout.split()

    # -- start / stop ---------------------------------------------------------------------------------------

    def start(self, timeout: float = 180) -> None:
        """Start containerd, the kubelet and kube-proxy, wait for the node to be Ready, then deploy CoreDNS
        and metrics-server and wait for them. On failure stops what it started and raises NodeError with the
        failing log's tail."""
        deadline = time.monotonic() + timeout
        try:
            self._start(deadline)
        except BaseException:
            with contextlib.suppress(NodeError):  # the start's error is the one to report
                self.stop()
            raise

    def _start(self, deadline: float) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        self._write_pki()
        self._configure_host()
        self._write_containerd_config()
        self._spawn("containerd", ["containerd", "--config", str(self.state_dir / "containerd.toml")])
        self._wait("containerd", deadline, lambda: self.ctr("version", check=False).returncode == 0)
        self.import_image_archive(build_scratch_image_archive(self.bin_dir, "pause", PAUSE_IMAGE))
        for program, image in (("coredns", COREDNS_IMAGE), ("metrics-server", METRICS_SERVER_IMAGE)):
            self.import_image_archive(build_scratch_image_archive(self.bin_dir, program, image))
        self._write_kubelet_config()
        self._spawn("kubelet", self._kubelet_args())
        self._spawn("kube-proxy", self._kube_proxy_args())
        self._wait("kubelet", deadline, self._node_ready)
        self.plane.kubectl("apply", "-f", "-", input=coredns_manifest())
        self.plane.kubectl("apply", "-f", "-", input=metrics_server_manifest())
        self._wait("kubelet", deadline, lambda: self._deployment_ready("coredns"))
        self._wait("kubelet", deadline, lambda: self._deployment_ready("metrics-server"))

    def stop(self) -> None:
        """Stop every process of the node and remove everything else it made (see `cleanup`); raises
        NodeError naming what survived."""
        for name in ("kubelet", "kube-proxy"):  # no more pods started or rules written from here on
            if name in self.processes:
                self.processes[name].kill()
                self.processes[name].wait()
        if "containerd" in self.processes and self.processes["containerd"].poll() is None:
            self._remove_containers()
        if self._pgid is not None:
            kill_group(self._pgid, list(self.pids.values()))
            for proc in self.processes.values():
                proc.wait()
            self._pgid = None
        cleanup(self.state_dir, self.containerd_socket)
        self._restore_sysctls()
        left = leftovers(self.state_dir)
        if left:
            raise NodeError("the node left behind: " + "; ".join(left))

    def _remove_containers(self) -> None:
        """Kill and delete every container (their snapshots with them), so containerd's persistent root keeps
        images only."""
        tasks = self.ctr("tasks", "ls", "-q", check=False).stdout.split()
        for task in tasks:
            self.ctr("tasks", "kill", "-a", "-s", "SIGKILL", task, check=False)
        for task in tasks:
            self.ctr("tasks", "delete", "-f", task, check=False)
        for container in self.containers():
            self.ctr("containers", "delete", container, check=False)

    @property
    def pids(self) -> dict[str, int]:
        return {name: proc.pid for name, proc in self.processes.items()}

    def _spawn(self, name: str, args: list[str]) -> None:
        log = (self.logs / f"{name}.log").open("ab")
        options: dict[str, Any] = {
            "stdin": subprocess.DEVNULL,
            "stdout": log,
            "stderr": subprocess.STDOUT,
            "process_group": 0 if self._pgid is None else self._pgid,
        }
        if self.detach:
            if self.lock_fd is not None:
                options["pass_fds"] = (self.lock_fd,)
        else:
            options["preexec_fn"] = die_with_parent()
        binary = shutil.which(args[0]) if name == "containerd" else str(self.bin_dir / args[0])
        with log:
            proc = subprocess.Popen([str(binary), *args[1:]], **options)
        self.processes[name] = proc
        if self._pgid is None:
            self._pgid = proc.pid

    def _wait(self, name: str, deadline: float, ready: Callable[[], bool]) -> None:
        while not ready():
            for proc_name, proc in self.processes.items():
                if proc.poll() is not None:
                    raise NodeError(f"{proc_name} exited with {proc.returncode}:\n{self.log_tail(proc_name)}")
            if time.monotonic() > deadline:
                raise NodeError(f"{name} not ready in time:\n{self.log_tail(name)}")
            time.sleep(0.5)

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.logs / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def _node_ready(self) -> bool:
        result = self.plane.kubectl(
            "get", "node", NODE_NAME, "-o", 'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
            check=False,
        )  # fmt: skip
        return result.stdout.strip() == "True"

    def _deployment_ready(self, name: str) -> bool:
        result = self.plane.kubectl(
            "-n", "kube-system", "get", "deployment", name, "-o", "jsonpath={.status.readyReplicas}",
            check=False,
        )  # fmt: skip
        return result.stdout.strip() == "1"

    # -- host set-up ----------------------------------------------------------------------------------------

    def _configure_host(self) -> None:
        """The lo address is added by ControlPlane's caller (the apiserver binds it too); here: cgroups for
        the kubelet's root, the sysctls, and a guard that drops any pod packet bound outside the range."""
        for hierarchy in Path("/sys/fs/cgroup").iterdir():
            if (hierarchy / "cgroup.procs").exists() and not (hierarchy / "cgroup.controllers").exists():
                (hierarchy / CGROUP_ROOT).mkdir(exist_ok=True)
        _remember_nft_tables()
        for key, value in SYSCTLS.items():
            path = Path("/proc/sys") / key
            self.sysctls_before[key] = path.read_text().strip()
            path.write_text(value)
        (self.state_dir / "sysctls-before.json").write_text(json.dumps(self.sysctls_before))
        # ip_forward=1 is machine-wide: make sure nothing from the pod range is forwarded anywhere else.
        guard = (
            f"table ip {NFT_TABLE} {{\n  chain forward {{\n    type filter hook forward priority -10;\n"
            f"    ip saddr {ADDRESS_RANGE} ip daddr != {ADDRESS_RANGE} drop\n"
            f"    ip daddr {ADDRESS_RANGE} ip saddr != {ADDRESS_RANGE} drop\n  }}\n}}\n"
        )
        _run("nft", "-f", "-", input=guard)

    def _restore_sysctls(self) -> None:
        saved = self.state_dir / "sysctls-before.json"
        before = self.sysctls_before or (json.loads(saved.read_text()) if saved.exists() else {})
        for key, value in before.items():
            with contextlib.suppress(OSError):
                (Path("/proc/sys") / key).write_text(value)

    def _write_pki(self) -> None:
        """The node's credentials: a client certificate for system:node:<name> (the Node authorizer and
        NodeRestriction limit it to its own node and pods), one for kube-proxy (system:kube-proxy, bound to
        system:node-proxier by default), and the kubelet's serving certificate for the node address."""
        ca = self.plane.pki
        self.pki.mkdir(parents=True, exist_ok=True)
        sign_certificate(ca, self.pki / "kubelet-client", f"/O=system:nodes/CN=system:node:{NODE_NAME}")
        sign_certificate(ca, self.pki / "kube-proxy", "/CN=system:kube-proxy")
        sign_certificate(ca, self.pki / "kubelet", f"/CN={NODE_NAME}", serving_ip=NODE_IP)
        for user in ("kubelet-client", "kube-proxy"):
            self.plane.write_kubeconfig(
                self.state_dir / f"{user}.kubeconfig", self.pki / f"{user}.crt", self.pki / f"{user}.key"
            )

    def _write_containerd_config(self) -> None:
        state = self.state_dir / "containerd"
        (self.state_dir / "cni" / "net.d").mkdir(parents=True, exist_ok=True)
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        config = f"""\
version = 2
root = "{self.containerd_root}"
state = "{state / "state"}"
# Snapshotters this machine cannot run only log errors; the CRI uses overlayfs.
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "{self.containerd_socket}"
[plugins."io.containerd.internal.v1.opt"]
  path = "{state / "opt"}"
[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  # No CAP_SYS_RESOURCE here: a negative oom_score_adj for the sandbox fails in runc.
  restrict_oom_score_adj = true
  [{cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{cri}.containerd.runtimes.runc.options]
        Root = "{state / "runc"}"
  [{cri}.cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{self.state_dir / "cni" / "net.d"}"
"""
        (self.state_dir / "containerd.toml").write_text(config)
        # The bridge with the gateway address, host-local addresses, a route to the range only (no default
        # route: nothing leaves the machine) and no masquerade.
        network = {
            "cniVersion": "0.4.0",
            "name": "kubechat",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": BRIDGE,
                    "isGateway": True,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": POD_SUBNET, "gateway": POD_GATEWAY}]],
                        "routes": [{"dst": ADDRESS_RANGE}],
                        "dataDir": str(self.state_dir / "cni" / "ipam"),
                    },
                },
                {"type": "loopback"},
            ],
        }
        (self.state_dir / "cni" / "net.d" / "10-kubechat.conflist").write_text(json.dumps(network, indent=2))

    def _write_kubelet_config(self) -> None:
        # An empty resolv.conf: pods see only the cluster's DNS, never the host's search domains or servers.
        (self.state_dir / "resolv.conf").write_text("")
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            # This host is cgroup v1; kubelet 1.35+ refuses it unless told.
            "failCgroupV1": False,
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": f"/{CGROUP_ROOT}",
            "address": NODE_IP,
            "port": 10250,
            "readOnlyPort": 0,
            "healthzPort": 0,
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(self.plane.pki / "ca.crt")},
            },
            "authorization": {"mode": "Webhook"},
            "tlsCertFile": str(self.pki / "kubelet.crt"),
            "tlsPrivateKeyFile": str(self.pki / "kubelet.key"),
            "clusterDomain": CLUSTER_DOMAIN,
            "clusterDNS": [DNS_SERVICE_IP],
            "resolvConf": str(self.state_dir / "resolv.conf"),
            "podLogsDir": str(self.state_dir / "pod-logs"),
            "containerRuntimeEndpoint": f"unix://{self.containerd_socket}",
            "failSwapOn": False,
            # A shared build machine's disk is often past the default thresholds: evict only when truly
            # full, and never garbage-collect the imported images (no registry could give them back).
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
                "nodefs.inodesFree": "1%",
            },
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "serializeImagePulls": False,
            "nodeStatusReportFrequency": "10s",
            "syncFrequency": "10s",
            "fileCheckFrequency": "10s",
        }
        (self.state_dir / "kubelet.json").write_text(json.dumps(config, indent=2))

    def _kubelet_args(self) -> list[str]:
        return [
            "kubelet",
            f"--config={self.state_dir / 'kubelet.json'}",
            f"--kubeconfig={self.state_dir / 'kubelet-client.kubeconfig'}",
            f"--root-dir={self.state_dir / 'kubelet'}",
            f"--cert-dir={self.state_dir / 'kubelet' / 'pki'}",
            f"--hostname-override={NODE_NAME}",
            f"--node-ip={NODE_IP}",
            "--node-labels=kubechat.dev/real-node=true",
            "--v=1",
        ]

    def _kube_proxy_args(self) -> list[str]:
        config = {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "mode": "nftables",
            "clientConnection": {"kubeconfig": str(self.state_dir / "kube-proxy.kubeconfig")},
            "hostnameOverride": NODE_NAME,
            "bindAddress": NODE_IP,
            "healthzBindAddress": f"{NODE_IP}:10256",
            "metricsBindAddress": f"{NODE_IP}:10249",
            "clusterCIDR": POD_SUBNET,
            "nodePortAddresses": [f"{NODE_IP}/32"],
            # Leave the machine's conntrack table sizes alone.
            "conntrack": {"maxPerCore": 0},
        }
        (self.state_dir / "kube-proxy.json").write_text(json.dumps(config, indent=2))
        return ["kube-proxy", f"--config={self.state_dir / 'kube-proxy.json'}", "--v=1"]

    # -- images ---------------------------------------------------------------------------------------------

    def import_image_archive(self, archive: Path, key: str | None = None) -> bool:
        """Import a docker-archive into the k8s.io namespace unless an image with the same cache key (default:
        the archive's content hash, recorded beside it) is there already; True when it imported."""
        key = key or archive.with_suffix(".key").read_text().strip()
        name = archive.with_suffix(".name").read_text().strip()
        marker = node_cache() / "imported" / re.sub(r"[^a-zA-Z0-9.-]+", "_", name)
        if marker.exists() and marker.read_text().strip() == key and name in self.images():
            return False
        self.remove_image(name)
        self.ctr("images", "import", "--no-unpack=false", "--snapshotter", "overlayfs", str(archive))
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(key)
        return True

    def load_images(self, *parts: str) -> dict[str, str]:
        """Build kubechat's images (`hack/images build`, skipped when their keys are unchanged; `base` is the
        Debian + Python base) and import them; returns each part's image name."""
        script = REPO_ROOT / "hack" / "images"
        buildable = [part for part in parts if part != "base"]
        if buildable:
            subprocess.run([script, "build", *buildable], check=True)
        archives = node_cache() / "images"
        subprocess.run([script, "archive", archives, *parts], check=True)
        names = {}
        for part in parts:
            self.import_image_archive(archives / f"{part}.tar")
            names[part] = (archives / f"{part}.name").read_text().strip()
        return names

    # -- detached state (hack/node) -------------------------------------------------------------------------

    def save(self) -> None:
        state = {"pgid": self._pgid, "pids": self.pids, "containerd_socket": str(self.containerd_socket)}
        (self.state_dir / "node-state.json").write_text(json.dumps(state, indent=2) + "\n")


def build_scratch_image_archive(bin_dir: Path, program: str, image: str) -> Path:
    """A docker-archive of a from-scratch image holding one static binary of `bin_dir` as its entrypoint,
    cached under ~/.cache/kubechat/node/images keyed by the binary's hash (built with buildah)."""
    binary = bin_dir / program
    digest = _run("sha256sum", binary).stdout.split()[0][:16]
    out = node_cache() / "images" / f"{program}.tar"
    key_file = out.with_suffix(".key")
    if out.exists() and key_file.exists() and key_file.read_text().strip() == digest:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    store = node_cache() / "buildah"
    bah = ["buildah", "--root", store / "storage", "--runroot", store / "run", "--storage-driver", "vfs"]
    ctr = _run(*bah, "from", "scratch").stdout.strip()
    try:
        _run(*bah, "copy", "--chmod", "0755", ctr, binary, f"/{program}")
        _run(*bah, "config", "--entrypoint", json.dumps([f"/{program}"]), "--user", "65534:65534", ctr)
        _run(*bah, "commit", "--quiet", ctr, image)
    finally:
        _run(*bah, "rm", ctr, check=False)
    out.unlink(missing_ok=True)
    _run(*bah, "push", "--quiet", image, f"docker-archive:{out}:{image}")
    _run(*bah, "rmi", "--all", "--force", check=False)
    out.with_suffix(".name").write_text(image)
    key_file.write_text(digest)
    return out


# The add-ons (CoreDNS, metrics-server) run as nobody in a locked-down container, like kubechat's own pods.
NOBODY_POD = {"runAsNonRoot": True, "runAsUser": 65534, "seccompProfile": {"type": "RuntimeDefault"}}
LOCKED_DOWN_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}


def addon_deployment(name: str, labels: dict[str, str], pod: dict[str, Any]) -> dict[str, Any]:
    """A one-replica Deployment in kube-system whose pods run as nobody with the ServiceAccount `name`."""
    pod = {"serviceAccountName": name, "securityContext": NOBODY_POD} | pod
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "kube-system", "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }


def coredns_manifest() -> str:
    """CoreDNS as the cluster's DNS: its RBAC, Corefile, Deployment and the kube-dns Service at
    DNS_SERVICE_IP. Only cluster names are answered (nothing is forwarded: no resolver is reachable)."""
    corefile = (
        f".:{DNS_PORT} {{\n    errors\n    health :8080\n    ready :8181\n"
        f"    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{\n      pods insecure\n"
        f"      fallthrough in-addr.arpa ip6.arpa\n    }}\n    cache 30\n}}\n"
    )
    labels = {"k8s-app": "kube-dns"}
    NS, RBAC = "kube-system", "rbac.authorization.k8s.io/v1"  # noqa: N806
    objects: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "coredns", "namespace": NS}},
        {
            "apiVersion": RBAC,
            "kind": "ClusterRole",
            "metadata": {"name": "system:coredns"},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["endpoints", "services", "pods", "namespaces"],
                    "verbs": ["list", "watch"],
                },
                {
                    "apiGroups": ["discovery.k8s.io"],
                    "resources": ["endpointslices"],
                    "verbs": ["list", "watch"],
                },
            ],
        },  # fmt: skip
        {
            "apiVersion": RBAC,
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "system:coredns"},
            "roleRef": {"apiGroup": RBAC.split("/")[0], "kind": "ClusterRole", "name": "system:coredns"},
            "subjects": [{"kind": "ServiceAccount", "name": "coredns", "namespace": NS}],
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "coredns", "namespace": NS},
            "data": {"Corefile": corefile},
        },
        addon_deployment(
            "coredns",
            labels,
            {
                "dnsPolicy": "Default",
                "containers": [
                    {
                        "name": "coredns",
                        "image": COREDNS_IMAGE,
                        "imagePullPolicy": "Never",
                        "args": ["-conf", "/etc/coredns/Corefile"],
                        "ports": [
                            {"containerPort": DNS_PORT, "protocol": "UDP", "name": "dns"},
                            {"containerPort": DNS_PORT, "protocol": "TCP", "name": "dns-tcp"},
                        ],
                        "securityContext": LOCKED_DOWN_CONTAINER,
                        "resources": {
                            "requests": {"cpu": "50m", "memory": "32Mi"},
                            "limits": {"memory": "128Mi"},
                        },
                        "volumeMounts": [{"name": "config", "mountPath": "/etc/coredns"}],
                        "livenessProbe": {"httpGet": {"path": "/health", "port": 8080}},
                        "readinessProbe": {
                            "httpGet": {"path": "/ready", "port": 8181},
                            "periodSeconds": 2,
                        },
                    }
                ],
                "volumes": [{"name": "config", "configMap": {"name": "coredns"}}],
            },
        ),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": NS, "labels": labels},
            "spec": {
                "clusterIP": DNS_SERVICE_IP,
                "selector": labels,
                "ports": [
                    {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": DNS_PORT},
                    {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": DNS_PORT},
                ],
            },
        },
    ]
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})


def metrics_server_manifest() -> str:
    """metrics-server (kubectl top, the HPA's resource metrics): RBAC, Deployment, Service and the
    v1beta1.metrics.k8s.io APIService. It reads the kubelets' /metrics/resource by InternalIP and checks their
    certificates against the cluster CA (the kube-root-ca.crt ConfigMap every namespace has)."""
    ns, rbac, name = "kube-system", "rbac.authorization.k8s.io/v1", "metrics-server"
    labels = {"k8s-app": name}
    account = [{"kind": "ServiceAccount", "name": name, "namespace": ns}]

    def binding(kind: str, role_kind: str, role: str, namespace: str | None = None) -> dict[str, Any]:
        metadata = {"name": f"{name}:{role.split(':')[-1]}"} | ({"namespace": namespace} if namespace else {})
        return {
            "apiVersion": rbac,
            "kind": kind,
            "metadata": metadata,
            "roleRef": {"apiGroup": rbac.split("/")[0], "kind": role_kind, "name": role},
            "subjects": account,
        }

    objects: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": ns}},
        {
            "apiVersion": rbac,
            "kind": "ClusterRole",
            "metadata": {"name": f"system:{name}"},
            "rules": [
                {"apiGroups": [""], "resources": ["nodes/metrics"], "verbs": ["get"]},
                {"apiGroups": [""], "resources": ["pods", "nodes"], "verbs": ["get", "list", "watch"]},
            ],
        },
        binding("ClusterRoleBinding", "ClusterRole", f"system:{name}"),
        binding("ClusterRoleBinding", "ClusterRole", "system:auth-delegator"),
        binding("RoleBinding", "Role", "extension-apiserver-authentication-reader", ns),
        addon_deployment(
            name,
            labels,
            {
                "containers": [
                    {
                        "name": name,
                        "image": METRICS_SERVER_IMAGE,
                        "imagePullPolicy": "Never",
                        "args": [
                            "--secure-port=4443",
                            "--cert-dir=/tmp",
                            "--kubelet-preferred-address-types=InternalIP",
                            "--kubelet-certificate-authority=/etc/cluster-ca/ca.crt",
                            "--metric-resolution=15s",
                        ],
                        "ports": [{"containerPort": 4443, "name": "https"}],
                        "securityContext": LOCKED_DOWN_CONTAINER,
                        "resources": {
                            "requests": {"cpu": "50m", "memory": "64Mi"},
                            "limits": {"memory": "256Mi"},
                        },
                        "readinessProbe": {
                            "httpGet": {"path": "/readyz", "port": "https", "scheme": "HTTPS"},
                            "periodSeconds": 5,
                        },
                        "volumeMounts": [
                            {"name": "tmp", "mountPath": "/tmp"},
                            {"name": "cluster-ca", "mountPath": "/etc/cluster-ca"},
                        ],
                    }
                ],
                "volumes": [
                    {"name": "tmp", "emptyDir": {}},
                    {"name": "cluster-ca", "configMap": {"name": "kube-root-ca.crt"}},
                ],
            },
        ),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"selector": labels, "ports": [{"name": "https", "port": 443, "targetPort": "https"}]},
        },
        {
            "apiVersion": "apiregistration.k8s.io/v1",
            "kind": "APIService",
            "metadata": {"name": "v1beta1.metrics.k8s.io"},
            "spec": {
                "group": "metrics.k8s.io",
                "version": "v1beta1",
                "service": {"name": name, "namespace": ns},
                # metrics-server serves a self-signed certificate (upstream's manifest does the same).
                "insecureSkipTLSVerify": True,
                "groupPriorityMinimum": 100,
                "versionPriority": 100,
            },
        },
    ]
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})


# -- a control plane with the node beside it ----------------------------------------------------------------


class Cluster:
    """A control plane serving on NODE_IP (no kwok) and the real node joined to it, under `state_dir`.
    Take the node lock first (`node_lock`) and hand its fd over when detaching."""

    def __init__(self, state_dir: Path, bin_dir: Path, *, detach: bool = False, lock_fd: int | None = None):
        self.state_dir = Path(state_dir)
        self.plane = ControlPlane(
            self.state_dir / "control-plane", bin_dir, detach=detach, node_ip=NODE_IP, kwok=False
        )
        self.node = Node(self.plane, self.state_dir / "node", bin_dir, detach=detach, lock_fd=lock_fd)

    def start(self) -> None:
        # What a killed run left (we hold the lock, so no node of anyone's runs now).
        cleanup()
        _run("ip", "addr", "add", f"{NODE_IP}/32", "dev", "lo")
        try:
            self.plane.start()
            self.node.start()
        except BaseException:
            self.plane.stop()
            cleanup()
            raise

    def stop(self) -> None:
        """Stop both; raises NodeError if anything of the node survived."""
        try:
            self.node.stop()
        finally:
            self.plane.stop()
            cleanup()

    def save(self) -> None:
        self.plane.save()
        self.node.save()


def _up(state_dir: Path, bin_dir: Path) -> int:
    with node_lock(timeout=0) as lock_fd:
        cluster = Cluster(state_dir, bin_dir, detach=True, lock_fd=lock_fd)
        return start_detached(
            "node",
            cluster,
            lambda took: (
                f"{NODE_NAME} Ready in {took:.0f} s, apiserver {cluster.plane.server}; "
                f'logs in {state_dir}/*/logs; eval "$(hack/node env)" to use it'
            ),
        )


def stop_detached(state_dir: Path, *, lock_held: bool = False) -> int:
    """Stop a detached cluster under `state_dir` (`hack/node up`), or clean up after a killed one, and check
    that nothing is left; 0 when nothing is. `lock_held`: the caller holds the node lock already."""
    kill_recorded(state_dir / "node", "node-state.json")
    kill_recorded(state_dir / "control-plane")
    with contextlib.nullcontext() if lock_held else node_lock(timeout=60):
        cleanup(state_dir)
        saved = state_dir / "node" / "sysctls-before.json"
        with contextlib.suppress(OSError, ValueError):
            for key, value in json.loads(saved.read_text()).items():
                (Path("/proc/sys") / key).write_text(value)
            saved.unlink()
        left = leftovers(state_dir)
    if left:
        print("node: left behind: " + "; ".join(left), file=sys.stderr)
        return 1
    print("node: stopped; nothing of it is left", file=sys.stderr)
    return 0


def _leftovers(state_dir: Path) -> int:
    try:
        with node_lock(timeout=0):
            left = leftovers(state_dir)
    except NodeError:
        print("a node is up (its lock is held): nothing to check")
        return 0
    print("\n".join(left) or "nothing")
    return 1 if left else 0


def main(argv: list[str] | None = None) -> int:
    commands = {"down": stop_detached, "leftovers": _leftovers}
    return state_dir_cli("hack/node", __doc__.split("\n\n")[0], _up, commands, argv)


if __name__ == "__main__":
    sys.exit(main())
