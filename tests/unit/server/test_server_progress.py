"""The load-progress reporter against a small local HTTP server that records the PATCH requests."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from kubechat_server.engine.loader import DownloadWatcher, folder_bytes
from kubechat_server.progress import ConfigMapPatcher, ProgressReporter


class Recorder(BaseHTTPRequestHandler):
    patches: list[dict] = []

    def do_PATCH(self):  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.patches.append(
            {
                "path": self.path,
                "auth": self.headers["Authorization"],
                "type": self.headers["Content-Type"],
                "body": json.loads(body),
            }
        )
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


@pytest.fixture
def apiserver():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    server.patches = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_reporter_merge_patches_its_pod_key_with_the_service_account_token(apiserver, tmp_path, monkeypatch):
    (tmp_path / "token").write_text("sa-token\n")
    (tmp_path / "namespace").write_text("team-a")
    monkeypatch.setenv("KUBECHAT_SA_DIR", str(tmp_path))
    monkeypatch.setenv("KUBECHAT_KUBE_API_URL", f"http://127.0.0.1:{apiserver.server_port}")
    reporter = ProgressReporter(ConfigMapPatcher.in_cluster("godel-progress", "godel-abc"), interval=0.05)
    for stage, args in [
        ("downloading", ("model.safetensors", 415, 1000)),
        ("loading", ("loading weights",)),
        ("warming", ("warm-up generation",)),
        ("ready", ("ok",)),
    ]:
        reporter.update(stage, *args)
        time.sleep(0.3)  # stages are seconds apart in a real start; each one reaches the apiserver
    reporter.close()

    patches = apiserver.patches
    assert patches, "no PATCH reached the apiserver"
    first = patches[0]
    assert first["path"] == "/api/v1/namespaces/team-a/configmaps/godel-progress"
    assert first["auth"] == "Bearer sa-token"
    assert first["type"] == "application/merge-patch+json"
    reports = [json.loads(p["body"]["data"]["godel-abc"]) for p in patches]
    assert all(set(p["body"]["data"]) == {"godel-abc"} for p in patches)
    stages = [r["stage"] for r in reports]
    assert stages[-1] == "ready" and reports[-1]["percent"] == 100.0
    assert stages == ["downloading", "loading", "warming", "ready"]
    assert all(r["updated"].endswith("Z") for r in reports)
    assert reports[0] | {"updated": ""} == {
        "stage": "downloading",
        "percent": 41.5,
        "bytesDone": 415,
        "bytesTotal": 1000,
        "message": "model.safetensors",
        "updated": "",
    }


def test_quick_successive_updates_coalesce_to_the_latest(apiserver):
    patcher = ConfigMapPatcher("p", "ns", "pod", f"http://127.0.0.1:{apiserver.server_port}", "t", None)
    reporter = ProgressReporter(patcher, interval=0.05)
    for stage in ("loading", "warming", "ready"):
        reporter.update(stage)
    reporter.close()
    assert json.loads(apiserver.patches[-1]["body"]["data"]["pod"])["stage"] == "ready"


def test_byte_updates_are_throttled_but_the_last_one_is_sent(apiserver):
    patcher = ConfigMapPatcher("p", "ns", "pod", f"http://127.0.0.1:{apiserver.server_port}", "t", None)
    reporter = ProgressReporter(patcher, interval=0.5)
    for done in range(0, 1001, 10):
        reporter.update("downloading", "weights", done, 1000)
    reporter.close()
    reports = [json.loads(p["body"]["data"]["pod"]) for p in apiserver.patches]
    assert len(reports) < 10
    assert reports[-1]["bytesDone"] == 1000 and reports[-1]["percent"] == 100.0


def test_unreachable_apiserver_never_breaks_loading():
    patcher = ConfigMapPatcher("p", "ns", "pod", "http://127.0.0.1:9", "t", None)
    reporter = ProgressReporter(patcher, interval=0.01)
    reporter.update("loading", "x")
    reporter.update("ready", "y")
    reporter.close()
    assert reporter.current.stage == "ready"


def test_download_watcher_reports_bytes_arriving_in_the_cache(tmp_path):
    reporter = ProgressReporter()
    folder = tmp_path / "models--org--name"
    watcher = DownloadWatcher(folder, total=2000, reporter=reporter, label="org/name", interval=0.05)
    watcher.start()
    (folder / "blobs").mkdir(parents=True)
    (folder / "blobs" / "abc.incomplete").write_bytes(b"x" * 500)
    watcher.stop()
    assert folder_bytes(folder) == 500
    assert reporter.current.to_json() | {"updated": ""} == {
        "stage": "downloading",
        "percent": 25.0,
        "bytesDone": 500,
        "bytesTotal": 2000,
        "message": "org/name",
        "updated": "",
    }
