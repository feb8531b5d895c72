"""The real node: pods run from locally imported images with addresses from 198.18.0.0/15, Services work
through kube-proxy, names resolve through CoreDNS, and `kubectl logs/exec/port-forward` reach the kubelet."""

from __future__ import annotations

import ipaddress
import urllib.request

import pytest

from tests.support.node import NODE_IP, NODE_NAME, POD_SUBNET, Cluster
from tests.support.pods import apply, exec_python, pod_field, port_forward, python_pod, wait_for, wait_ready

# The first test also pays for the session's set-up: starting the node and, on a cold machine, building the
# images (the server's alone takes 7-12 minutes on two cores).
pytestmark = [pytest.mark.cluster, pytest.mark.controlplane, pytest.mark.slow, pytest.mark.timeout(2700)]

WEB_SERVER = (
    "import http.server, os\n"
    "class Hello(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        body = ('hello from ' + os.environ['HOSTNAME']).encode()\n"
    "        self.send_response(200); self.end_headers(); self.wfile.write(body)\n"
    "http.server.HTTPServer(('', 8080), Hello).serve_forever()\n"
)
SLEEP = "import time; print('toolbox up', flush=True); time.sleep(3600)"


@pytest.fixture
def web(real_cluster: Cluster, cluster_namespace: str, base_image: str) -> str:
    """A pod answering HTTP on 8080 behind a ClusterIP Service `web` (port 80), and a toolbox pod."""
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }
    apply(
        real_cluster.plane,
        cluster_namespace,
        python_pod("web", base_image, WEB_SERVER),
        python_pod("toolbox", base_image, SLEEP),
        service,
    )
    wait_ready(real_cluster.plane, cluster_namespace, "pod/web")
    wait_ready(real_cluster.plane, cluster_namespace, "pod/toolbox")
    return cluster_namespace


def test_node_is_ready_and_registered_with_node_credentials(real_cluster: Cluster) -> None:
    plane = real_cluster.plane
    address = plane.kubectl(
        "get", "node", NODE_NAME, "-o", 'jsonpath={.status.addresses[?(@.type=="InternalIP")].address}'
    ).stdout
    assert address == NODE_IP
    node_kubeconfig = f"--kubeconfig={real_cluster.node.state_dir / 'kubelet-client.kubeconfig'}"
    # The Node authorizer: the kubelet's identity reads nothing beyond its own pods' needs.
    whoami = plane.kubectl(node_kubeconfig, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")
    assert whoami.stdout == f"system:node:{NODE_NAME}"
    denied = plane.kubectl(node_kubeconfig, "get", "secrets", "-A", check=False)
    assert denied.returncode != 0 and "forbidden" in denied.stderr.lower()


def test_pods_get_addresses_from_the_range_and_no_route_off_the_machine(
    real_cluster: Cluster, web: str
) -> None:
    plane = real_cluster.plane
    pod_ip = ipaddress.ip_address(pod_field(plane, web, "web", "{.status.podIP}"))
    assert pod_ip in ipaddress.ip_network(POD_SUBNET)
    assert pod_field(plane, web, "web", "{.spec.nodeName}") == NODE_NAME
    routes = exec_python(plane, web, "toolbox", "print(open('/proc/net/route').read())")
    destinations = [line.split()[1] for line in routes.splitlines()[1:] if line.strip()]
    assert "00000000" not in destinations, f"a default route in the pod:\n{routes}"


def test_kubectl_logs_shows_the_container_output(real_cluster: Cluster, web: str) -> None:
    logs = real_cluster.plane.kubectl("-n", web, "logs", "toolbox").stdout
    assert "toolbox up" in logs


def test_service_name_resolves_and_answers_through_kube_proxy(real_cluster: Cluster, web: str) -> None:
    # A new Service reaches CoreDNS and kube-proxy through watches: allow them seconds, as a client would.
    script = (
        "import time, urllib.request\n"
        "for attempt in range(30):\n"
        "    try:\n"
        f"        print(urllib.request.urlopen('http://web.{web}.svc', timeout=5).read().decode()); break\n"
        "    except OSError as error:\n"
        "        last = error; time.sleep(1)\n"
        "else:\n"
        "    raise SystemExit(f'never answered: {last}')\n"
    )
    answer = exec_python(real_cluster.plane, web, "toolbox", script)
    assert answer.strip() == "hello from web"


def test_pods_reach_the_apiserver_through_the_kubernetes_service(real_cluster: Cluster, web: str) -> None:
    # In-cluster config: KUBERNETES_SERVICE_HOST is the Service's ClusterIP; the apiserver answers (401 to
    # an anonymous caller is an answer) with the certificate the service account's CA bundle trusts.
    script = (
        "import os, ssl, urllib.request, urllib.error, socket\n"
        "ca = '/var/run/secrets/kubernetes.io/serviceaccount/ca.crt'\n"
        "token = open('/var/run/secrets/kubernetes.io/serviceaccount/token').read()\n"
        "ctx = ssl.create_default_context(cafile=ca)\n"
        "req = urllib.request.Request('https://kubernetes.default.svc/version',"
        " headers={'Authorization': 'Bearer ' + token})\n"
        "print(socket.gethostbyname('kubernetes.default.svc.cluster.local'))\n"
        "print(urllib.request.urlopen(req, context=ctx, timeout=10).status)\n"
    )
    service_ip, status = exec_python(real_cluster.plane, web, "toolbox", script).split()
    assert (
        service_ip
        == real_cluster.plane.kubectl(
            "get", "service", "kubernetes", "-o", "jsonpath={.spec.clusterIP}"
        ).stdout
    )
    assert status == "200"


def test_kubectl_port_forward_reaches_the_pod(real_cluster: Cluster, web: str) -> None:
    proc, port = port_forward(real_cluster.plane, web, "pod/web", 8080)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
            assert response.read() == b"hello from web"
    finally:
        proc.kill()
        proc.wait()


def test_kubectl_top_reads_pod_usage_from_metrics_server(real_cluster: Cluster, web: str) -> None:
    plane = real_cluster.plane

    def usage() -> str:
        result = plane.kubectl("-n", web, "top", "pod", "web", "--no-headers", check=False)
        return result.stdout if result.returncode == 0 else ""

    # metrics-server scrapes every 15 s; a new pod has numbers after a scrape or two.
    line = wait_for(usage, timeout=120, interval=3, message="kubectl top never showed the pod")
    name, cpu, memory = line.split()
    assert name == "web" and cpu.endswith("m") and memory.endswith("Mi")
    assert int(memory[:-2]) > 0
