"""Benchmark: N ChatModels applied through the operator vs. the same children created with a plain client.

Both runs share one real control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok) in this
process's lifetime; the baseline measures what the apiserver and controllers alone need to bring N model
Deployments to Ready, the operator run adds everything the operator does (apply, watch, status). Reported:
time until every Deployment (baseline) / every ChatModel (operator) is Ready, the operator's CPU seconds and
peak RSS during the run, and its CPU use while idle afterwards.

    python bench/operator/bench.py --count 100 [--count 1000] [--json out.json]
    python bench/operator/bench.py --noise 10000   # unrelated Pods + ConfigMaps vs. an empty namespace

The noise run starts one operator on an empty namespace, measures its RSS and CPU over a window, then creates
N unrelated ConfigMaps and N unrelated Pods (never scheduled) in the namespace it watches and measures again:
with server-side label selectors on its child watches none of them should reach it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "operator")]

from kubernetes.client.rest import ApiException  # noqa: E402

from kubechat_operator.builders import build_model_children  # noqa: E402
from kubechat_operator.config import OperatorConfig  # noqa: E402
from kubechat_operator.kube import Kube  # noqa: E402
from kubechat_operator.spec import ChatModelSpec, Resource  # noqa: E402
from tests.support.controlplane import ControlPlane, build  # noqa: E402
from tests.support.procs import free_port, python_env  # noqa: E402

SPEC = {"model": {"id": "microsoft/GODEL-v1_1-base-seq2seq"}, "replicas": 1}
WORKERS = 8
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def bench_nodes(count: int) -> list[dict]:
    """Extra kwok nodes so that every benchmark pod has room (the test nodes hold 110 pods each)."""
    capacity = {"cpu": "1000", "memory": "4000Gi", "pods": "500"}
    return [
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": f"kwok-bench-{i}",
                "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {"type": "kwok", "kubernetes.io/hostname": f"kwok-bench-{i}"},
            },
            "spec": {},
            "status": {"allocatable": capacity, "capacity": capacity},
        }
        for i in range(count)
    ]


def process_usage(pid: int) -> tuple[float, int]:
    """(CPU seconds, RSS bytes) of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    rss = next(
        int(line.split()[1]) * 1024
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if line.startswith("VmRSS:")
    )
    return cpu, rss


def _answered(check) -> bool:  # noqa: ANN001
    """check(), with an apiserver too busy to answer (a 5xx such as a 504 under load) counted as not yet."""
    try:
        return check()
    except ApiException as exc:
        if exc.status and exc.status >= 500:
            return False
        raise


def wait_all(check, timeout: float, on_tick=None) -> float:  # noqa: ANN001
    """Poll check() once a second until it is true; the seconds it took."""
    start = time.monotonic()
    while not _answered(check):
        if on_tick:
            on_tick()
        if time.monotonic() - start > timeout:
            raise TimeoutError("not all Ready in time")
        time.sleep(1)
    return time.monotonic() - start


def create_concurrently(create, count: int) -> float:  # noqa: ANN001
    """create(i) for i in range(count) on WORKERS threads; the seconds it took."""
    start = time.monotonic()
    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(create, range(count)))
    return time.monotonic() - start


def create_namespace(kube: Kube, name: str) -> None:
    kube.request(
        "POST",
        "/api/v1/namespaces",
        body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
    )


def ready_deployments(kube: Kube, namespace: str) -> int:
    items = kube.list("Deployment", namespace)
    return sum(1 for d in items if d.get("status", {}).get("readyReplicas", 0) >= d["spec"]["replicas"])


def run_baseline(kube: Kube, count: int) -> dict:
    """Create each ChatModel's children directly (no CR, no ownerReferences) and wait for the Deployments."""
    namespace = "bench-baseline"
    create_namespace(kube, namespace)
    spec = ChatModelSpec.model_validate(SPEC)
    config = OperatorConfig()

    def create(i: int) -> None:
        owner = Resource(
            api_version="kubechat.dev/v1alpha1",
            kind="ChatModel",
            name=f"m{i}",
            namespace=namespace,
            uid=f"u{i}",
        )
        for child in build_model_children(owner, spec, config):
            child["metadata"].pop("ownerReferences")
            kube.create(child)

    created = create_concurrently(create, count)
    waited = wait_all(lambda: ready_deployments(kube, namespace) >= count, 1800)
    return {"seconds_to_all_ready": round(created + waited, 1), "seconds_creating": round(created, 1)}


def run_operator(kube: Kube, plane: ControlPlane, count: int, log: Path, idle_s: float) -> dict:
    namespace = "bench-operator"
    with operator_watching(kube, plane, namespace, log, settle_s=3) as proc:
        cpu0, rss_peak = process_usage(proc.pid)

        def sample() -> None:
            nonlocal rss_peak
            rss_peak = max(rss_peak, process_usage(proc.pid)[1])

        def create(i: int) -> None:
            kube.create(
                {
                    "apiVersion": "kubechat.dev/v1alpha1",
                    "kind": "ChatModel",
                    "metadata": {"name": f"m{i}", "namespace": namespace},
                    "spec": SPEC,
                }
            )

        def all_ready() -> bool:
            items = kube.list("ChatModel", namespace)
            return len(items) == count and all((m.get("status") or {}).get("phase") == "Ready" for m in items)

        creating = create_concurrently(create, count)
        waited = wait_all(all_ready, 1800, sample)
        total = creating + waited
        cpu1, _ = process_usage(proc.pid)
        # Two windows: the first still sees the tail of the watch events (controllers settling after the
        # last pod turned Ready), the second is the operator with nothing to do.
        time.sleep(idle_s)
        cpu2, _ = process_usage(proc.pid)
        time.sleep(idle_s)
        cpu3, rss_idle = process_usage(proc.pid)
        assert proc.poll() is None, "the operator died"
        return {
            "seconds_to_all_ready": round(total, 1),
            "seconds_after_creating": round(waited, 1),
            "cpu_seconds_during_run": round(cpu1 - cpu0, 1),
            "peak_rss_mb": round(max(rss_peak, rss_idle) / 2**20, 1),
            "settling_cpu_percent": round(100 * (cpu2 - cpu1) / idle_s, 2),
            "idle_cpu_percent": round(100 * (cpu3 - cpu2) / idle_s, 2),
            "idle_seconds_measured": idle_s,
        }


@contextlib.contextmanager
def operator_watching(
    kube: Kube, plane: ControlPlane, namespace: str, log: Path, settle_s: float
) -> Iterator[subprocess.Popen]:
    """An operator process watching the fresh `namespace`, given `settle_s` seconds to list and start
    watching; stopped (SIGTERM, then SIGKILL after 30 s) on exit."""
    create_namespace(kube, namespace)
    proc = start_operator(plane, namespace, log)
    try:
        time.sleep(settle_s)
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def start_operator(plane: ControlPlane, namespace: str, log: Path) -> subprocess.Popen:
    args = [
        sys.executable,
        "-m",
        "kubechat_operator",
        f"--namespace={namespace}",
        f"--liveness-port={free_port()}",
        f"--metrics-port={free_port()}",
    ]
    with log.open("wb") as out:
        return subprocess.Popen(
            args, env=python_env(**plane.env()), stdout=out, stderr=subprocess.STDOUT, cwd=REPO
        )


def unrelated(kind: str, i: int) -> dict:
    """An object the operator has nothing to do with: no kubechat label. Pods name a scheduler that does not
    exist, so they stay Pending and cost no node."""
    if kind == "ConfigMap":
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"noise-{i}"},
            "data": {"k": "v"},
        }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"noise-{i}", "labels": {"app": "noise"}},
        "spec": {"schedulerName": "nobody", "containers": [{"name": "c", "image": "registry.invalid/noise"}]},
    }


def run_noise(kube: Kube, plane: ControlPlane, count: int, log: Path, window_s: float) -> dict:
    """RSS and CPU of one operator process with its namespace empty, then with count unrelated ConfigMaps
    and count unrelated Pods in it (created during the second window)."""
    namespace = "bench-noise"
    with operator_watching(kube, plane, namespace, log, settle_s=5) as proc:
        cpu0, _ = process_usage(proc.pid)
        time.sleep(window_s)
        cpu1, rss_empty = process_usage(proc.pid)

        def create(i: int) -> None:
            for kind in ("ConfigMap", "Pod"):
                manifest = unrelated(kind, i)
                manifest["metadata"]["namespace"] = namespace
                kube.create(manifest)

        creating = create_concurrently(create, count)
        time.sleep(window_s)
        cpu2, rss_noisy = process_usage(proc.pid)
        assert proc.poll() is None, "the operator died"
        empty_cpu = 100 * (cpu1 - cpu0) / window_s
        noisy_cpu = 100 * (cpu2 - cpu1) / (creating + window_s)
        return {
            "unrelated_objects": 2 * count,
            "seconds_creating": round(creating, 1),
            "empty": {"rss_mb": round(rss_empty / 2**20, 1), "cpu_percent": round(empty_cpu, 2)},
            "noisy": {"rss_mb": round(rss_noisy / 2**20, 1), "cpu_percent": round(noisy_cpu, 2)},
            "rss_noisy_over_empty": round(rss_noisy / rss_empty, 3),
        }


@contextlib.contextmanager
def bench_plane() -> Iterator[tuple[ControlPlane, Kube, Path]]:
    """A control plane of its own in a temporary directory, with kubechat's CRDs applied, and a client of it
    (KUBECONFIG points at it); both stopped on exit."""
    with tempfile.TemporaryDirectory(prefix="kubechat-bench-") as state:
        plane = ControlPlane(Path(state), build())
        plane.start()
        try:
            os.environ["KUBECONFIG"] = str(plane.kubeconfig)
            kube = Kube.connect(pool_size=WORKERS * 2)
            plane.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
            crd = "crd/chatmodels.kubechat.dev"
            plane.kubectl("wait", "--for=condition=Established", crd, "--timeout=60s")
            try:
                yield plane, kube, Path(state)
            finally:
                kube.close()
        finally:
            plane.stop()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, action="append", help="ChatModels per run (repeatable)")
    parser.add_argument("--idle-seconds", type=float, default=30)
    parser.add_argument("--noise", type=int, help="run the unrelated-objects comparison with N of each kind")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C, so the finally blocks stop the operator and the control plane.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    results = []
    if args.noise:
        with bench_plane() as (plane, kube, state):
            result = run_noise(kube, plane, args.noise, state / "operator.log", args.idle_seconds)
            print(json.dumps(result), flush=True)
            results.append(result)
    for count in args.count or ([] if args.noise else [100]):
        # A fresh control plane per size, so that one run's objects do not slow the next.
        with bench_plane() as (plane, kube, state):
            # Room for the baseline's pods and the operator's (both stay until the end).
            for node in bench_nodes(2 * count // 400 + 1):
                kube.request("POST", "/api/v1/nodes", body=node)
            baseline = run_baseline(kube, count)
            operator = run_operator(kube, plane, count, state / "operator.log", args.idle_seconds)
            ratio = round(operator["seconds_to_all_ready"] / baseline["seconds_to_all_ready"], 2)
            result = {
                "count": count,
                "baseline": baseline,
                "operator": operator,
                "operator_over_baseline": ratio,
            }
            print(json.dumps(result), flush=True)
            results.append(result)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
