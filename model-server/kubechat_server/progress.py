"""Load progress: what the pod is doing while it starts, in the logs, in ``/healthz`` and for the operator.

When ``KUBECHAT_PROGRESS_CONFIGMAP`` is set, every update is merge-patched into that ConfigMap (key: the pod
name) through the in-cluster service-account token, as docs/contracts.md describes. The apiserver address
and the service-account directory can be overridden (``KUBECHAT_KUBE_API_URL``, ``KUBECHAT_SA_DIR``) so
tests can point the reporter at a local server.
"""

from __future__ import annotations

import json
import logging
import os
import ssl
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

log = logging.getLogger("kubechat_server.progress")

STAGES = ("downloading", "loading", "warming", "ready", "failed")
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


@dataclass(frozen=True)
class LoadProgress:
    """One progress report, in the JSON shape of the contract (camelCase keys)."""

    stage: str
    percent: float | None = None
    bytesDone: int | None = None  # noqa: N815 - the contract's key
    bytesTotal: int | None = None  # noqa: N815
    message: str = ""
    updated: str = ""

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


class ConfigMapPatcher:
    """Merge-patches one key of a ConfigMap through the Kubernetes API (plain HTTPS, no client library)."""

    def __init__(self, name: str, namespace: str, key: str, api_url: str, token: str, ca_file: str | None):
        self.url = f"{api_url.rstrip('/')}/api/v1/namespaces/{namespace}/configmaps/{name}"
        self.key, self.token = key, token
        self.context = ssl.create_default_context(cafile=ca_file) if api_url.startswith("https") else None

    @classmethod
    def in_cluster(cls, name: str, pod_name: str, namespace: str = "") -> ConfigMapPatcher:
        """The patcher a pod uses: service-account token, CA and namespace from the mounted secret."""
        sa_dir = Path(os.environ.get("KUBECHAT_SA_DIR", SA_DIR))
        api_url = os.environ.get("KUBECHAT_KUBE_API_URL")
        if not api_url:
            host = os.environ["KUBERNETES_SERVICE_HOST"]
            api_url = f"https://{host}:{os.environ.get('KUBERNETES_SERVICE_PORT', '443')}"
        if not namespace:
            namespace = (sa_dir / "namespace").read_text().strip()
        ca_file = sa_dir / "ca.crt"
        token = (sa_dir / "token").read_text().strip()
        return cls(name, namespace, pod_name, api_url, token, str(ca_file) if ca_file.exists() else None)

    def patch(self, value: str) -> None:
        body = json.dumps({"data": {self.key: value}}).encode()
        request = urllib.request.Request(
            self.url,
            data=body,
            method="PATCH",
            headers={
                "Authorization": f"Bearer {self.token}",
                "Content-Type": "application/merge-patch+json",
                "Accept": "application/json",
            },
        )
        with urllib.request.urlopen(request, timeout=10, context=self.context) as response:
            response.read()


class ProgressReporter:
    """Keeps the latest progress, logs stage changes, and ships updates to the ConfigMap in the background.

    Byte-level updates are throttled (one per ``interval`` seconds); stage changes are always sent. A slow or
    failing apiserver never slows loading down: sending happens on its own thread and errors are logged.
    """

    def __init__(self, patcher: ConfigMapPatcher | None = None, interval: float = 1.0):
        self.patcher = patcher
        self.interval = interval
        self.current = LoadProgress(stage="loading", message="starting", updated=_now())
        self._lock = threading.Condition()
        self._pending: LoadProgress | None = None
        self._last_sent = 0.0
        self._urgent = False
        self._closed = False
        self._thread: threading.Thread | None = None
        if patcher is not None:
            self._thread = threading.Thread(target=self._ship, name="progress-reporter", daemon=True)
            self._thread.start()

    def update(
        self, stage: str, message: str = "", done: int | None = None, total: int | None = None
    ) -> None:
        """Record progress; ``done``/``total`` are bytes while downloading."""
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}")
        percent = round(100.0 * done / total, 1) if done is not None and total else None
        if stage == "ready":
            percent = 100.0
        progress = LoadProgress(stage, percent, done, total, message, _now())
        with self._lock:
            stage_changed = stage != self.current.stage
            self.current = progress
            if stage_changed:
                log.info("load progress: %s %s", stage, message)
            if self.patcher is None:
                return
            # The shipper sends the newest update: a stage change at once, bytes at most once per interval.
            self._pending = progress
            self._urgent = self._urgent or stage_changed
            self._lock.notify()

    def close(self, timeout: float = 5.0) -> None:
        """Send what is pending, then stop the background thread."""
        with self._lock:
            self._closed = True
            self._lock.notify()
        if self._thread is not None:
            self._thread.join(timeout)

    def _ship(self) -> None:
        while True:
            with self._lock:
                while self._pending is None and not self._closed:
                    self._lock.wait()
                if self._pending is None:
                    return
                wait = self.interval - (time.monotonic() - self._last_sent)
                if wait > 0 and not self._urgent and not self._closed:
                    self._lock.wait(wait)
                progress, self._pending, self._urgent = self._pending, None, False
                self._last_sent = time.monotonic()
            try:
                self.patcher.patch(json.dumps(progress.to_json()))
            except (OSError, urllib.error.URLError) as exc:
                log.warning("could not report load progress to the ConfigMap: %s", exc)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
