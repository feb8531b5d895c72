"""Start and stop a real local Kubernetes control plane: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok, on free loopback ports, with certificates generated for the occasion.

Two users share this code. The pytest fixture (`tests/support/cluster_fixtures.py`) runs one per session in a
temporary directory; every child is in one process group and gets SIGKILL when the test process dies, so
nothing survives a failed or interrupted run. `hack/control-plane up|down|status` runs one in the
background for people (`python3 -m tests.support.controlplane up --state-dir DIR --bin-dir DIR`); its
children outlive the command and `down` kills their group.

Only the standard library is used here, so `hack/control-plane` runs it with any Python 3.11.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.procs import die_with_parent

REPO_ROOT = Path(__file__).resolve().parents[2]
NODES_YAML = REPO_ROOT / "hack" / "controlplane" / "kwok" / "nodes.yaml"
FAULT_STAGES_YAML = REPO_ROOT / "hack" / "controlplane" / "kwok" / "fault-stages.yaml"
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
# Every address of the clusters here comes from 198.18.0.0/15 (set aside for benchmarking: never routed on the
# internet, and none of the private ranges a real network uses): Services in 198.19.0.0/16, the real node and
# its apiserver on 198.18.0.1 (tests/support/node.py), real pods in 198.18.1.0/24, kwok's pretend pods above.
SERVICE_CIDR = "198.19.0.0/16"
SERVICE_IP = "198.19.0.1"  # the `kubernetes` Service: the first address of SERVICE_CIDR
POD_CIDR = "198.18.128.1/17"
NODE_IP = "198.18.0.1"


class ControlPlaneError(RuntimeError):
    """The control plane did not come up; the message carries the tail of the failing component's log."""


def build(repo_root: Path = REPO_ROOT) -> Path:
    """Build the pinned binaries if needed (`hack/control-plane build`) and return their directory."""
    script = repo_root / "hack" / "control-plane"
    subprocess.run([script, "build"], check=True)
    return Path(
        subprocess.run([script, "bin-dir"], check=True, capture_output=True, text=True).stdout.strip()
    )


def _free_ports(count: int) -> list[int]:
    """Distinct loopback ports nobody listens on (held open together so none is handed out twice)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


_EC = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "3650")


def sign_certificate(ca_dir: Path, out: Path, subject: str, *, serving_ip: str | None = None) -> None:
    """`out`.crt and `out`.key: a client certificate for `subject` signed by the CA in `ca_dir`, or with
    `serving_ip` a serving certificate for that address."""
    # `req -x509` would mark every certificate a CA (openssl.cnf's v3_ca); a leaf must say it is none.
    usage = ["-addext", "extendedKeyUsage=clientAuth"]
    if serving_ip:
        usage = ["-addext", f"subjectAltName=IP:{serving_ip}", "-addext", "extendedKeyUsage=serverAuth"]
    _openssl(
        "req", "-x509", *_EC, "-CA", ca_dir / "ca.crt", "-CAkey", ca_dir / "ca.key",
        "-addext", "basicConstraints=critical,CA:FALSE", "-addext", "keyUsage=critical,digitalSignature",
        "-keyout", out.with_suffix(".key"), "-out", out.with_suffix(".crt"), "-subj", subject, *usage,
    )  # fmt: skip


def _write_pki(pki: Path, advertise_ip: str | None) -> None:
    """A CA, the apiserver's serving certificate, an admin client certificate, the front proxy's client
    certificate (for aggregated APIs such as metrics-server) and the service-account key."""
    pki.mkdir(parents=True, exist_ok=True)
    _openssl(
        "req", "-x509", *_EC, "-keyout", pki / "ca.key", "-out", pki / "ca.crt", "-subj", "/CN=kubechat-ca"
    )
    names = f"IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc,IP:{SERVICE_IP}"
    if advertise_ip:
        names += f",IP:{advertise_ip}"
    _openssl(
        "req", "-x509", *_EC, "-CA", pki / "ca.crt", "-CAkey", pki / "ca.key",
        "-addext", "basicConstraints=critical,CA:FALSE", "-addext", "keyUsage=critical,digitalSignature",
        "-keyout", pki / "apiserver.key", "-out", pki / "apiserver.crt", "-subj", "/CN=kube-apiserver",
        "-addext", f"subjectAltName={names}", "-addext", "extendedKeyUsage=serverAuth",
    )  # fmt: skip
    # O=system:masters is the group the apiserver grants everything: the admin of this throwaway cluster.
    sign_certificate(pki, pki / "admin", "/O=system:masters/CN=kubechat-admin")
    sign_certificate(pki, pki / "front-proxy-client", "/CN=front-proxy-client")
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", pki / "sa.key")
    _openssl("pkey", "-in", pki / "sa.key", "-pubout", "-out", pki / "sa.pub")


def _write_kubeconfig(path: Path, server: str, pki: Path, cert: Path, key: Path) -> None:
    """A kubeconfig for the client certificate `cert` (JSON is valid YAML, so no YAML library is needed)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "kubechat", "cluster": {"server": server, "certificate-authority": str(pki / "ca.crt")}}
        ],
        "users": [
            {
                "name": "kubechat-admin",
                "user": {"client-certificate": str(cert), "client-key": str(key)},
            }
        ],
        "contexts": [{"name": "kubechat", "context": {"cluster": "kubechat", "user": "kubechat-admin"}}],
        "current-context": "kubechat",
    }
    path.write_text(json.dumps(config, indent=2) + "\n")


class ControlPlane:
    """A control plane whose files (certificates, etcd data, logs, kubeconfig) live in `state_dir`.

    `bin_dir` holds the binaries of `hack/control-plane build`; kwok's stages are read from `bin_dir/../etc`.
    With `detach=False` (tests) every child dies with the thread that started it; with `detach=True`
    (`hack/control-plane up`) the children outlive the process that started them.

    With `node_ip` (a real node beside it, tests/support/node.py) the apiserver listens on that address
    instead of loopback, so pods reach it through the `kubernetes` Service (whose endpoint it becomes); the
    address must be on one of the machine's links. `kwok=False` leaves out kwok and its simulated nodes.
    """

    def __init__(
        self,
        state_dir: Path,
        bin_dir: Path,
        *,
        detach: bool = False,
        node_ip: str | None = None,
        kwok: bool = True,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.bin_dir = Path(bin_dir)
        self.detach = detach
        self.node_ip = node_ip
        self.kwok = kwok
        self.pki = self.state_dir / "pki"
        self.logs = self.state_dir / "logs"
        self.kubeconfig = self.state_dir / "kubeconfig"
        self._pick_ports()
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._pgid: int | None = None

    def _pick_ports(self) -> None:
        """Free loopback ports for every listener, and the server URL that follows from them."""
        names = ("etcd", "etcd-peer", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
        self.ports = dict(zip(names, _free_ports(len(names)), strict=True))
        self.server = f"https://{self.node_ip or '127.0.0.1'}:{self.ports['kube-apiserver']}"

    # -- what tests use -------------------------------------------------------------------------------------

    def env(self, **extra: str) -> dict[str, str]:
        """The environment for a subprocess that uses this control plane: KUBECONFIG, PATH with kubectl."""
        env = dict(os.environ)
        env["KUBECONFIG"] = str(self.kubeconfig)
        env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}"
        env.update(extra)
        return env

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run this control plane's kubectl; output is captured as text. `check=True` raises on failure
        with kubectl's stderr in the message."""
        result = subprocess.run(
            [str(self.bin_dir / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise subprocess.CalledProcessError(result.returncode, result.args, result.stdout, result.stderr)
        return result

    def api_client(self) -> Any:
        """A `kubernetes.client.ApiClient` for this control plane (the caller closes it)."""
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.kubeconfig))

    @property
    def pids(self) -> dict[str, int]:
        """The process id of each component."""
        return {name: proc.pid for name, proc in self.processes.items()}

    @property
    def process_group(self) -> int | None:
        """The process group that holds every component (None once stopped)."""
        return self._pgid

    # -- start / stop ---------------------------------------------------------------------------------------

    def start(self, timeout: float = 90) -> None:
        """Start every component and return once the apiserver is ready, the kwok nodes are Ready, the
        scheduler is healthy and the controller manager has created the default namespace's service
        account. Raises ControlPlaneError (after stopping what it started) if that takes longer than
        `timeout` seconds."""
        deadline = time.monotonic() + timeout
        for attempt in (1, 2):
            try:
                self._start(deadline)
                return
            except ControlPlaneError as error:
                self.stop()
                # Another process can bind a port between _free_ports and the component: pick anew, once.
                if attempt == 2 or "address already in use" not in str(error):
                    raise
                self.processes.clear()
                self._pick_ports()
            except BaseException:
                self.stop()
                raise

    def _start(self, deadline: float) -> None:
        if self.state_dir.exists():
            shutil.rmtree(self.state_dir)
        self.logs.mkdir(parents=True)
        _write_pki(self.pki, self.node_ip)
        self.write_kubeconfig(self.kubeconfig, self.pki / "admin.crt", self.pki / "admin.key")
        self._spawn("etcd", self._etcd_args())
        self._wait("etcd", deadline, self._etcd_healthy)
        self._spawn("kube-apiserver", self._apiserver_args())
        self._wait("kube-apiserver", deadline, lambda: self._get("/readyz") == 200)
        self._spawn("kube-controller-manager", self._controller_manager_args())
        self._spawn("kube-scheduler", self._scheduler_args())
        if self.kwok:
            self._spawn("kwok", self._kwok_args())
            self.kubectl("apply", "-f", str(NODES_YAML))
            self._wait("kwok", deadline, self._nodes_ready)
        self._wait("kube-scheduler", deadline, self._scheduler_healthy)
        self._wait(
            "kube-controller-manager",
            deadline,
            lambda: self._get("/api/v1/namespaces/default/serviceaccounts/default") == 200,
        )

    def write_kubeconfig(self, path: Path, cert: Path, key: Path) -> None:
        """A kubeconfig for this control plane and the client certificate `cert` (signed by its CA)."""
        _write_kubeconfig(path, self.server, self.pki, cert, key)

    def stop(self) -> None:
        """Kill every component and reap them; returns once they are gone."""
        if self._pgid is None:
            return
        kill_group(self._pgid, list(self.pids.values()))
        for proc in self.processes.values():
            proc.wait()
        self._pgid = None

    def stop_components(self, *names: str) -> None:
        """Stop some components (e.g. etcd and the apiserver, to take the cluster away from its clients
        for a while); `start_components` brings them back with the same ports, certificates and data."""
        for name in names:
            self.processes[name].terminate()
            self.processes[name].wait()

    def start_components(self, *names: str, timeout: float = 60) -> None:
        """Start components stopped by `stop_components`, in the order given, each with its original
        command line; waits until etcd and the apiserver are healthy again."""
        deadline = time.monotonic() + timeout
        command_lines = {
            "etcd": self._etcd_args,
            "kube-apiserver": self._apiserver_args,
            "kube-controller-manager": self._controller_manager_args,
            "kube-scheduler": self._scheduler_args,
            "kwok": self._kwok_args,
        }
        healthy = {"etcd": self._etcd_healthy, "kube-apiserver": lambda: self._get("/readyz") == 200}
        for name in names:
            self._spawn(name, command_lines[name]())
            if name in healthy:
                self._wait(name, deadline, healthy[name])

    def _spawn(self, name: str, args: list[str]) -> None:
        log = (self.logs / f"{name}.log").open("wb")
        # The first child leads a new process group and the others join it, so one killpg stops them all
        # (and a terminal's Ctrl-C, sent to the foreground group, does not reach them).
        options: dict[str, Any] = {
            "stdin": subprocess.DEVNULL,
            "stdout": log,
            "stderr": subprocess.STDOUT,
            "process_group": 0 if self._pgid is None else self._pgid,
        }
        if not self.detach:
            options["preexec_fn"] = die_with_parent()
        with log:
            proc = subprocess.Popen([str(self.bin_dir / name), *args], **options)
        self.processes[name] = proc
        if self._pgid is None:
            self._pgid = proc.pid

    def _wait(self, name: str, deadline: float, ready: Callable[[], bool]) -> None:
        while not ready():
            proc = self.processes[name]
            if proc.poll() is not None:
                raise ControlPlaneError(f"{name} exited with {proc.returncode}:\n{self._log_tail(name)}")
            if time.monotonic() > deadline:
                raise ControlPlaneError(f"{name} not ready in time:\n{self._log_tail(name)}")
            time.sleep(0.2)

    def _log_tail(self, name: str, lines: int = 30) -> str:
        return "\n".join((self.logs / f"{name}.log").read_text(errors="replace").splitlines()[-lines:])

    # -- readiness probes -----------------------------------------------------------------------------------

    def _etcd_healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ports['etcd']}/health", timeout=2) as resp:
                return json.load(resp).get("health") == "true"
        except (OSError, ValueError):
            return False

    def _get(self, path: str) -> int | None:
        """GET `path` from the apiserver as admin: the status code, or None when it does not answer."""
        context = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        context.load_cert_chain(self.pki / "admin.crt", self.pki / "admin.key")
        try:
            with urllib.request.urlopen(self.server + path, timeout=2, context=context) as resp:
                return resp.status
        except urllib.error.HTTPError as error:
            return error.code
        except OSError:
            return None

    def _scheduler_healthy(self) -> bool:
        # It serves /healthz with a self-signed certificate of its own making: nothing to verify it against.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        url = f"https://127.0.0.1:{self.ports['kube-scheduler']}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=2, context=context) as resp:
                return resp.status == 200
        except OSError:
            return False

    def _nodes_ready(self) -> bool:
        result = self.kubectl(
            "get",
            "nodes",
            "-o",
            'jsonpath={range .items[*]}{.status.conditions[?(@.type=="Ready")].status} {end}',
        )
        states = result.stdout.split()
        return bool(states) and all(state == "True" for state in states)

    # -- command lines --------------------------------------------------------------------------------------

    def _etcd_args(self) -> list[str]:
        client = f"http://127.0.0.1:{self.ports['etcd']}"
        peer = f"http://127.0.0.1:{self.ports['etcd-peer']}"
        return [
            f"--data-dir={self.state_dir / 'etcd'}",
            "--name=kubechat",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=kubechat={peer}",
            # A throwaway test store: durability buys nothing, fsync costs seconds on a busy disk.
            "--unsafe-no-fsync",
            "--log-level=warn",
        ]

    def _apiserver_args(self) -> list[str]:
        pki = self.pki
        address = self.node_ip or "127.0.0.1"
        return [
            f"--etcd-servers=http://127.0.0.1:{self.ports['etcd']}",
            f"--bind-address={address}",
            f"--advertise-address={address}",
            f"--secure-port={self.ports['kube-apiserver']}",
            f"--cert-dir={self.state_dir / 'kube-apiserver'}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            # Endpoints may not hold a loopback address: without a node address the `kubernetes` Service gets
            # none (nothing in a kwok pod would call it) instead of an error logged on every sync.
            *([] if self.node_ip else ["--endpoint-reconciler-type=none"]),
            # The front proxy: the apiserver presents front-proxy-client when it forwards a request to an
            # aggregated API (metrics-server), which trusts the user named in the headers only from it.
            f"--proxy-client-cert-file={pki / 'front-proxy-client.crt'}",
            f"--proxy-client-key-file={pki / 'front-proxy-client.key'}",
            f"--requestheader-client-ca-file={pki / 'ca.crt'}",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            # Node credentials (system:node:<name>) reach only their own node's objects.
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            # kubectl logs/exec/port-forward: the apiserver calls the kubelet at its InternalIP, checks its
            # serving certificate against the CA, and shows it the admin certificate.
            "--kubelet-preferred-address-types=InternalIP",
            f"--kubelet-certificate-authority={pki / 'ca.crt'}",
            f"--kubelet-client-certificate={pki / 'admin.crt'}",
            f"--kubelet-client-key={pki / 'admin.key'}",
            "--allow-privileged=true",
            "--profiling=false",
        ]

    def _component_kubeconfig_args(self) -> list[str]:
        kubeconfig = str(self.kubeconfig)
        return [
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            # One instance each: no leader election, so they act the moment they start.
            "--leader-elect=false",
        ]

    def _controller_manager_args(self) -> list[str]:
        return [
            *self._component_kubeconfig_args(),
            f"--secure-port={self.ports['kube-controller-manager']}",
            f"--cert-dir={self.state_dir / 'kube-controller-manager'}",
            # Every default controller: garbage collector, deployment, replicaset, HPA, namespace,
            # service accounts and their tokens, node lifecycle, endpoint slices, jobs, ...
            "--controllers=*",
            f"--service-account-private-key-file={self.pki / 'sa.key'}",
            f"--root-ca-file={self.pki / 'ca.crt'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            # HPAs re-evaluate quickly, so tests that watch them do not wait the default 15 s.
            "--horizontal-pod-autoscaler-sync-period=5s",
        ]

    def _scheduler_args(self) -> list[str]:
        return [
            *self._component_kubeconfig_args(),
            f"--secure-port={self.ports['kube-scheduler']}",
            f"--cert-dir={self.state_dir / 'kube-scheduler'}",
        ]

    def _kwok_args(self) -> list[str]:
        return [
            f"--kubeconfig={self.kubeconfig}",
            f"--config={self.bin_dir.parent / 'etc' / 'kwok-stages.yaml'}",
            f"--config={FAULT_STAGES_YAML}",
            # Only the nodes of nodes.yaml: a node some test registers by hand stays its own.
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            f"--cidr={POD_CIDR}",
            "--node-ip=127.0.0.1",
            # kwok renews each node's Lease, so the node lifecycle controller keeps the nodes Ready.
            "--node-lease-duration-seconds=40",
        ]

    # -- detached state (hack/control-plane) ----------------------------------------------------------------

    def save(self) -> None:
        """Record what `down` and `status` need in state.json."""
        state = {
            "pgid": self.process_group,
            "pids": self.pids,
            "server": self.server,
            "kubeconfig": str(self.kubeconfig),
        }
        (self.state_dir / "state.json").write_text(json.dumps(state, indent=2) + "\n")


def alive(pid: int) -> bool:
    """Whether `pid` is a live (not zombie) process."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def kill_group(pgid: int, pids: list[int], timeout: float = 10) -> None:
    """SIGKILL the process group and wait up to `timeout` seconds for `pids` to be gone.

    No SIGTERM first: the state is thrown away anyway, and kube-apiserver's graceful shutdown (draining
    watches, etcd waiting for it) takes over ten seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)


# -- hack/control-plane up|down|status --------------------------------------------------------------------


def _load_state(state_dir: Path, state_file: str = "state.json") -> dict[str, Any]:
    try:
        return json.loads((state_dir / state_file).read_text())
    except (OSError, ValueError):
        return {"pids": {}}


def _live_components(state_dir: Path, state: dict[str, Any]) -> dict[str, int]:
    """The recorded components still running. A pid from state.json counts only while its command line
    names this state directory: after a reboot the same number may belong to someone else's process."""

    def ours(pid: int) -> bool:
        try:
            return str(state_dir) in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            return False

    return {name: pid for name, pid in state["pids"].items() if alive(pid) and ours(pid)}


def start_detached(label: str, started: ControlPlane | Any, ready: Callable[[float], str]) -> int:
    """`started.start()` for a detached run, then `started.save()` so `down` finds its processes; says on
    stderr how it went (`ready(seconds)` when it is up). 0 when up."""
    start = time.monotonic()
    try:
        started.start()
    except RuntimeError as error:  # ControlPlaneError, NodeError
        print(f"{label}: {error}", file=sys.stderr)
        return 1
    started.save()
    print(f"{label}: {ready(time.monotonic() - start)}", file=sys.stderr)
    return 0


def _up(state_dir: Path, bin_dir: Path) -> int:
    if _live_components(state_dir, _load_state(state_dir)):
        print(f"control-plane: already running; state in {state_dir}", file=sys.stderr)
        return 0
    plane = ControlPlane(state_dir, bin_dir, detach=True)
    return start_detached(
        "control-plane",
        plane,
        lambda took: (
            f"up in {took:.1f} s at {plane.server}; logs in {plane.logs}; "
            'eval "$(hack/control-plane env)" to use it'
        ),
    )


def kill_recorded(state_dir: Path, state_file: str = "state.json") -> list[int] | None:
    """SIGKILL the processes a detached run recorded in `state_dir`/`state_file` and forget them; returns
    the pids that outlived SIGKILL, or None when none of them ran."""
    state = _load_state(state_dir, state_file)
    live = _live_components(state_dir, state)
    if not live:
        return None
    # While any member lives the group id cannot be reused, so the group is still exactly ours.
    kill_group(state["pgid"], list(live.values()))
    left = [pid for pid in live.values() if alive(pid)]
    if not left:
        (state_dir / state_file).unlink()
    return left


def _down(state_dir: Path) -> int:
    left = kill_recorded(state_dir)
    if left:
        print(f"control-plane: processes {left} outlived SIGKILL", file=sys.stderr)
        return 1
    print("control-plane: stopped" if left == [] else "control-plane: not running", file=sys.stderr)
    return 0


def _status(state_dir: Path) -> int:
    state = _load_state(state_dir)
    live = _live_components(state_dir, state)
    if not live:
        print("control-plane: not running")
        return 1
    print(f"control-plane: running at {state['server']}, kubeconfig {state['kubeconfig']}")
    for name, pid in state["pids"].items():
        print(f"  {name:<24} pid {pid:<8} {'up' if name in live else 'DEAD'}")
    return 0 if len(live) == len(state["pids"]) else 1


def state_dir_cli(
    prog: str,
    description: str,
    up: Callable[[Path, Path], int],
    commands: dict[str, Callable[[Path], int]],
    argv: list[str] | None,
) -> int:
    """The command line of hack/control-plane and hack/node: `up --state-dir DIR --bin-dir DIR`, or another
    command with just `--state-dir DIR`."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("command", choices=["up", *commands])
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--bin-dir", type=Path)
    args = parser.parse_args(argv)
    if args.command != "up":
        return commands[args.command](args.state_dir)
    if args.bin_dir is None:
        parser.error("up needs --bin-dir")
    return up(args.state_dir, args.bin_dir)


def main(argv: list[str] | None = None) -> int:
    commands = {"down": _down, "status": _status}
    return state_dir_cli("hack/control-plane", __doc__.split("\n\n")[0], _up, commands, argv)


if __name__ == "__main__":
    sys.exit(main())
