"""`kubechat-operator`: run the operator (also `python -m kubechat_operator`)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import kopf
from prometheus_client import start_http_server

from kubechat_operator.config import DEFAULT_FRONTEND_IMAGE, DEFAULT_MODEL_SERVER_IMAGE

logger = logging.getLogger("kubechat_operator")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="kubechat-operator", description=__doc__)
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "-n", "--namespace", action="append", default=[], help="watch this namespace (repeatable)"
    )
    scope.add_argument(
        "-A", "--all-namespaces", action="store_true", help="watch the whole cluster (default)"
    )
    parser.add_argument("--liveness-port", type=int, default=8081, help="serves /healthz (0 = off)")
    parser.add_argument("--metrics-port", type=int, default=9090, help="serves Prometheus /metrics (0 = off)")
    parser.add_argument(
        "--model-server-image",
        default=os.environ.get("KUBECHAT_MODEL_SERVER_IMAGE", DEFAULT_MODEL_SERVER_IMAGE),
        help="default model-server image (env KUBECHAT_MODEL_SERVER_IMAGE)",
    )
    parser.add_argument(
        "--frontend-image",
        default=os.environ.get("KUBECHAT_FRONTEND_IMAGE", DEFAULT_FRONTEND_IMAGE),
        help="default frontend image (env KUBECHAT_FRONTEND_IMAGE)",
    )
    parser.add_argument(
        "--autoscale-interval",
        type=float,
        default=float(os.environ.get("KUBECHAT_AUTOSCALE_INTERVAL") or 5.0),
        help="seconds between the request autoscaler's rounds (env KUBECHAT_AUTOSCALE_INTERVAL)",
    )
    parser.add_argument(
        "--leader-elect", action="store_true", help="run only while holding the Lease (for HA)"
    )
    parser.add_argument("--lease-name", default="kubechat-operator")
    parser.add_argument(
        "--lease-namespace",
        default=os.environ.get("POD_NAMESPACE"),
        help="namespace of the Lease (default: $POD_NAMESPACE, else the first --namespace, else default)",
    )
    parser.add_argument(
        "--identity", default=os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


class _StandbyLiveness(BaseHTTPRequestHandler):
    """/healthz of a replica waiting for the lease: alive, not leading."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.send_response(200 if self.path == "/healthz" else 404)
        self.end_headers()
        self.wfile.write(b"standby\n")

    def log_message(self, *args: object) -> None:
        pass


def _wait_to_lead(args: argparse.Namespace, stop: threading.Event):  # noqa: ANN202
    from kubechat_operator.kube import Kube
    from kubechat_operator.leader import LeaderElection

    namespace = args.lease_namespace or (args.namespace[0] if args.namespace else "default")
    election = LeaderElection(Kube.connect(pool_size=2), namespace, args.lease_name, args.identity)
    standby = (
        ThreadingHTTPServer(("0.0.0.0", args.liveness_port), _StandbyLiveness) if args.liveness_port else None
    )
    if standby:
        threading.Thread(target=standby.serve_forever, daemon=True).start()
    try:
        leading = election.wait_for_leadership(stop)
    finally:
        if standby:
            standby.shutdown()
            standby.server_close()
    return election if leading else None


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    kopf.configure(verbose=args.verbose, log_prefix=True)
    # The builders read the default images from the environment (config.OperatorConfig.from_env).
    os.environ["KUBECHAT_MODEL_SERVER_IMAGE"] = args.model_server_image
    os.environ["KUBECHAT_FRONTEND_IMAGE"] = args.frontend_image
    os.environ["KUBECHAT_AUTOSCALE_INTERVAL"] = str(args.autoscale_interval)
    import kubechat_operator.main  # noqa: F401  (registers the handlers)

    if args.metrics_port:
        start_http_server(args.metrics_port)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    election = None
    if args.leader_elect:
        election = _wait_to_lead(args, stop)
        if election is None:
            return 0
    if election is not None:
        election.keep(stop.set)
    liveness = f"http://0.0.0.0:{args.liveness_port}/healthz" if args.liveness_port else None
    try:
        kopf.run(
            clusterwide=not args.namespace,
            namespaces=args.namespace,
            liveness_endpoint=liveness,
            standalone=True,
            stop_flag=stop,
            # Kopf waits for the flag in an executor thread; the cleanup handler sets it when Kopf stops on
            # its own (SIGTERM), so that thread ends and the process can exit.
            memo=kopf.Memo(stop_flag=stop),
        )
    finally:
        if election is not None:
            election.release()
    return 0
