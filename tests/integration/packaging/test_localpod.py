"""hack/localpod.py's translation of a pod's container into a local process (pure parts, no cluster)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from hack.localpod import console_script_argv, image_entrypoint, translate


def test_image_entrypoint_is_read_from_the_dockerfile_that_builds_the_image() -> None:
    assert image_entrypoint("localhost/kubechat-server:0.1.0") == ["kubechat-server"]
    assert image_entrypoint("registry.example/team/kubechat-frontend@sha256:abc") == ["kubechat-frontend"]
    with pytest.raises(ValueError, match="not one of kubechat's images"):
        image_entrypoint("nginx:1.27")


def test_console_script_runs_the_function_pyproject_names() -> None:
    argv = console_script_argv(["kubechat-frontend", "--flag"], "/venv/bin/python")
    assert argv[0] == "/venv/bin/python" and argv[1] == "-c" and argv[-1] == "--flag"
    assert "from kubechat_frontend.cli import serve as main" in argv[2]
    assert console_script_argv(["python3", "-c", "pass"], "/venv/bin/python") == ["python3", "-c", "pass"]


def deployment(container: dict) -> dict:
    return {
        "kind": "Deployment",
        "metadata": {"name": "chat", "namespace": "team"},
        "spec": {"template": {"spec": {"containers": [container]}}},
    }


def test_only_paths_ports_service_urls_and_the_downward_api_are_translated(tmp_path: Path) -> None:
    container = {
        "name": "frontend",
        "image": "localhost/kubechat-frontend:0.1.0",
        "args": ["--liveness-port=8080", "--cache=/cache/x", "--other=8080"],
        "ports": [{"containerPort": 8080}],
        "volumeMounts": [{"name": "data", "mountPath": "/data"}, {"name": "cache", "mountPath": "/cache"}],
        "env": [
            {"name": "STORE", "value": "sqlite:////data/history.db"},
            {"name": "HF_HOME", "value": "/cache"},
            {"name": "NOT_A_MOUNT", "value": "/database"},
            {"name": "APP_PORT", "value": "8080"},
            {"name": "MODELS", "value": '[{"url": "http://godel.team.svc:8080"}]'},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "GREETING", "value": "hi $(POD_NAME)"},
        ],
    }
    local = translate(
        deployment(container),
        kube=None,  # type: ignore[arg-type]  # no envFrom/configMapKeyRef: nothing is read
        python=sys.executable,
        workdir=tmp_path,
        ports={8080: 18080},
        service_urls={("godel", "team", 8080): "http://127.0.0.1:19000"},
    )
    data, cache = tmp_path / "volumes" / "data", tmp_path / "volumes" / "cache"
    assert data.is_dir() and cache.is_dir()
    assert local.env["STORE"] == f"sqlite:///{data}/history.db"
    assert local.env["HF_HOME"] == str(cache)
    assert local.env["NOT_A_MOUNT"] == "/database"
    assert local.env["APP_PORT"] == "18080"
    assert local.env["MODELS"] == '[{"url": "http://127.0.0.1:19000"}]'
    assert local.env["POD_NAME"] == "chat-local" and local.env["GREETING"] == "hi chat-local"
    assert local.argv[3:] == ["--liveness-port=18080", f"--cache={cache}/x", "--other=8080"]
    assert local.url(8080, "/health") == "http://127.0.0.1:18080/health"
