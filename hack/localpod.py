"""Run a Deployment's container as a local process, exactly as its pod would run it.

The packaging tests (tests/integration/packaging, on kwok's control plane, where no pod runs) read a
Deployment back from the apiserver and start its container here: the image's ENTRYPOINT (from the Dockerfile
that builds that image) or the container's `command`, its `args`, and its env resolved the way the kubelet
does (`envFrom` ConfigMaps/Secrets, then `env` with `valueFrom`), read from the apiserver with kubectl.

Only what cannot be the same on one host is translated, and nothing else:
- volume mount paths → local directories (in env values, arguments and `--flag=` values, also inside
  `scheme:///path` URLs),
- container ports → free local ports (in env values named *PORT and `--*port=N` arguments that name one),
- `http://<service>.<namespace>.svc:<port>` URLs → the local address of the process serving that Service,
- the downward API (pod name, node name, pod IP) → a local pod name, `localhost`, 127.0.0.1,
- the pod's ServiceAccount → a kubeconfig carrying a token of that ServiceAccount (so RBAC is the pod's).
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
IMAGE_REPOSITORY = re.compile(r"(^|/)kubechat-(?P<part>operator|server|frontend)(:|@|$)")
SERVICE_URL = re.compile(
    r"http://(?P<service>[a-z0-9-]+)\.(?P<namespace>[a-z0-9-]+)\.svc(?:\.cluster\.local)?:(?P<port>\d+)"
)
VAR_REF = re.compile(r"\$\((?P<name>[A-Za-z_][A-Za-z0-9_]*)\)")
FILE_URL = re.compile(r"^(?P<scheme>[a-z][a-z0-9+.-]*:///)(?P<path>/.*)$")  # e.g. sqlite:////data/history.db
PORT_FLAG = re.compile(r"^(?P<flag>--[\w-]*port=)(?P<port>\d+)$")

Manifest = dict[str, Any]


class Kubectl:
    """Reads objects from the apiserver with kubectl (whatever KUBECONFIG the given env points at)."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)

    def run(self, *args: str, input: str | None = None) -> str:
        done = subprocess.run(
            ["kubectl", *args], env=self.env, input=input, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def get(self, kind: str, name: str, namespace: str) -> Manifest:
        return json.loads(self.run("get", kind, name, "-n", namespace, "-o", "json"))

    def service_account_kubeconfig(self, name: str, namespace: str, path: Path) -> Path:
        """A kubeconfig for the same apiserver that authenticates as ServiceAccount namespace/name."""
        token = self.run("create", "token", name, "-n", namespace, "--duration=2h").strip()
        view = json.loads(self.run("config", "view", "--minify", "--raw", "-o", "json"))
        cluster = view["clusters"][0]
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [cluster],
            "users": [{"name": name, "user": {"token": token}}],
            "contexts": [
                {"name": name, "context": {"cluster": cluster["name"], "user": name, "namespace": namespace}}
            ],
            "current-context": name,
        }
        path.write_text(json.dumps(config))
        path.chmod(0o600)
        return path


def image_entrypoint(image: str) -> list[str]:
    """The ENTRYPOINT of a kubechat image, read from the Dockerfile that builds it (hack/images)."""
    match = IMAGE_REPOSITORY.search(image.split(":")[0] if "@" not in image else image.split("@")[0])
    if not match:
        raise ValueError(f"{image!r} is not one of kubechat's images (…/kubechat-operator|server|frontend)")
    dockerfile = REPO_ROOT / f"Dockerfile.{match['part']}"
    lines = [line for line in dockerfile.read_text().splitlines() if line.startswith("ENTRYPOINT")]
    return json.loads(lines[-1].removeprefix("ENTRYPOINT").strip())


def console_script_argv(argv: list[str], python: str) -> list[str]:
    """argv with a console script of pyproject.toml (as pip installs it in the image) run by `python`."""
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    if not argv or argv[0] not in scripts:
        return argv
    module, function = scripts[argv[0]].split(":")
    launcher = (
        f"import sys; from {module} import {function} as main; sys.argv[0] = {argv[0]!r}; sys.exit(main())"
    )
    return [python, "-c", launcher, *argv[1:]]


@dataclass
class PodIdentity:
    """What the downward API tells a pod about itself."""

    name: str
    namespace: str
    node: str = "localhost"
    ip: str = "127.0.0.1"
    service_account: str = "default"

    def field(self, path: str) -> str:
        fields = {
            "metadata.name": self.name,
            "metadata.namespace": self.namespace,
            "spec.nodeName": self.node,
            "status.podIP": self.ip,
            "status.hostIP": self.ip,
            "spec.serviceAccountName": self.service_account,
        }
        if path not in fields:
            raise ValueError(f"fieldRef {path!r} is not supported locally")
        return fields[path]


@dataclass
class LocalContainer:
    """A container of a pod template, translated to a local process (not started yet)."""

    name: str
    argv: list[str]
    env: dict[str, str]
    ports: dict[int, int]
    workdir: Path
    volumes: dict[str, Path] = field(default_factory=dict)

    def url(self, container_port: int, path: str = "") -> str:
        return f"http://127.0.0.1:{self.ports[container_port]}{path}"


def _decode_secret(secret: Manifest) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}


def _env_from(kube: Kubectl, namespace: str, sources: list[Manifest]) -> dict[str, str]:
    env: dict[str, str] = {}
    for source in sources:
        prefix = source.get("prefix", "")
        is_config_map = "configMapRef" in source
        ref = source["configMapRef"] if is_config_map else source["secretRef"]
        try:
            found = kube.get("configmap" if is_config_map else "secret", ref["name"], namespace)
        except RuntimeError:
            if ref.get("optional"):
                continue
            raise
        data = (found.get("data") or {}) if is_config_map else _decode_secret(found)
        env.update({prefix + k: v for k, v in data.items()})
    return env


def _value_from(kube: Kubectl, pod: PodIdentity, source: Manifest) -> str | None:
    if "fieldRef" in source:
        return pod.field(source["fieldRef"]["fieldPath"])
    if "configMapKeyRef" in source:
        ref = source["configMapKeyRef"]
        data = kube.get("configmap", ref["name"], pod.namespace).get("data") or {}
    elif "secretKeyRef" in source:
        ref = source["secretKeyRef"]
        data = _decode_secret(kube.get("secret", ref["name"], pod.namespace))
    else:
        raise ValueError(f"env source {sorted(source)} is not supported locally")
    if ref["key"] not in data and ref.get("optional"):
        return None
    return data[ref["key"]]


def _expand(value: str, env: Mapping[str, str]) -> str:
    """Kubernetes' $(VAR) expansion in env values, command and args (unknown references stay as written)."""
    return VAR_REF.sub(lambda m: env.get(m["name"], m.group(0)), value)


def _map_paths(value: str, mounts: Mapping[str, Path]) -> str:
    """A path under a volume mount (alone, or in a URL such as sqlite:////data/x.db) → the local directory."""
    url = FILE_URL.match(value)
    if url:
        return url["scheme"] + _map_paths(url["path"], mounts)
    for mount_path, local in sorted(mounts.items(), key=lambda item: -len(item[0])):
        if value == mount_path or value.startswith(mount_path.rstrip("/") + "/"):
            return str(local) + value[len(mount_path.rstrip("/")) :]
    return value


def translate(
    workload: Manifest,
    kube: Kubectl,
    *,
    python: str,
    workdir: Path,
    ports: Mapping[int, int],
    service_urls: Mapping[tuple[str, str, int], str] | None = None,
    base_env: Mapping[str, str] | None = None,
    container: str | None = None,
) -> LocalContainer:
    """The local process for one container (the first, or `container`) of a Pod or of the pod template of a
    Deployment (or any workload with spec.template)."""
    meta = workload["metadata"]
    namespace = meta["namespace"]
    is_pod = workload["kind"] == "Pod"
    pod_spec = workload["spec"] if is_pod else workload["spec"]["template"]["spec"]
    spec = next(c for c in pod_spec["containers"] if container in (None, c["name"]))
    pod = PodIdentity(
        name=meta["name"] if is_pod else f"{meta['name']}-local",
        namespace=namespace,
        service_account=pod_spec.get("serviceAccountName", "default"),
    )

    volumes = {mount["name"]: workdir / "volumes" / mount["name"] for mount in spec.get("volumeMounts", [])}
    mounts = {mount["mountPath"]: volumes[mount["name"]] for mount in spec.get("volumeMounts", [])}
    for path in volumes.values():
        path.mkdir(parents=True, exist_ok=True)

    env = _env_from(kube, namespace, spec.get("envFrom", []))
    for var in spec.get("env", []):
        if "valueFrom" in var:
            value = _value_from(kube, pod, var["valueFrom"])
        else:
            value = _expand(var.get("value", ""), env)
        if value is not None:
            env[var["name"]] = value

    container_ports = {p["containerPort"] for p in spec.get("ports", [])}
    urls = dict(service_urls or {})

    def local_urls(value: str) -> str:
        return SERVICE_URL.sub(
            lambda m: urls.get((m["service"], m["namespace"], int(m["port"])), m.group(0)), value
        )

    def local_value(name: str, value: str) -> str:
        value = _map_paths(value, mounts)
        if name.endswith("PORT") and value.isdigit() and int(value) in container_ports:
            value = str(ports[int(value)])
        return local_urls(value)

    env = {name: local_value(name, value) for name, value in env.items()}

    def local_arg(arg: str) -> str:
        arg = _expand(arg, env)
        flag, equals, value = arg.partition("=")
        arg = (
            f"{flag}={_map_paths(value, mounts)}"
            if equals and flag.startswith("-")
            else _map_paths(arg, mounts)
        )
        arg = local_urls(arg)
        flag = PORT_FLAG.match(arg)
        if flag and int(flag["port"]) in container_ports:
            arg = f"{flag['flag']}{ports[int(flag['port'])]}"
        return arg

    argv = [
        local_arg(a)
        for a in [*(spec.get("command") or image_entrypoint(spec["image"])), *spec.get("args", [])]
    ]
    process_env = {**(base_env or {}), **env}
    return LocalContainer(
        name=spec["name"],
        argv=console_script_argv(argv, python),
        env=process_env,
        ports={p: ports[p] for p in container_ports},
        workdir=workdir,
        volumes=volumes,
    )


class LocalProcess:
    """A started LocalContainer: its own process group (stopped as a whole), output in a log file."""

    def __init__(self, spec: LocalContainer, log_path: Path) -> None:
        self.spec = spec
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(
                spec.argv,
                env=spec.env,
                cwd=spec.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def wait_http(self, url: str, timeout: float, accept: Callable[[int], bool] = lambda s: s == 200) -> None:
        """Wait until url answers with an accepted status; fail early if the process died."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.spec.name} exited ({self.process.returncode}):\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if accept(response.status):
                        return
            except urllib.error.HTTPError as error:
                if accept(error.code):
                    return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not answer in {timeout:.0f} s:\n{self.log_tail()}")
            time.sleep(0.5)

    def stop(self, grace: float = 10.0) -> None:
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
