"""Reading load from pods' Prometheus /metrics: model servers' in-flight and queued requests, and the requests
ChatFrontends hold for a model with no ready pod. A pod that does not answer in time reads as None (unknown).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from kubechat_operator.builders.common import HTTP_PORT
from kubechat_operator.kube import Manifest
from kubechat_operator.metrics import AUTOSCALER_SCRAPES

logger = logging.getLogger(__name__)

# The model server exports vLLM's names (model-server/kubechat_server/metrics.py), so a KEDA or Prometheus
# rule written for vLLM reads kubechat the same way.
MODEL_LOAD_METRICS = ("vllm:num_requests_running", "vllm:num_requests_waiting")
# Each ChatFrontend pod: requests it holds because the model (label `model`) has no ready replica.
FRONTEND_HELD_METRIC = "kubechat_frontend_waiting_requests"
# A scrape round must end well inside the autoscaler's interval, whatever a pod does: 1 s to connect, 2 s in
# all. A model server's /metrics is ~10 KB; 1 MiB bounds a pod that answers with something else.
TIMEOUT = aiohttp.ClientTimeout(total=2, connect=1)
MAX_BODY_BYTES = 1 << 20


def model_load(text: str) -> int | None:
    """Running + waiting requests of one model-server pod; None when it exports neither."""
    found = [
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name in MODEL_LOAD_METRICS
        for sample in family.samples
    ]
    return round(sum(found)) if found else None


def held_requests(text: str, model: str) -> int:
    """Requests a frontend pod holds for model (0 when it exports no such sample: nothing held)."""
    return round(
        sum(
            sample.value
            for family in text_string_to_metric_families(text)
            if family.name == FRONTEND_HELD_METRIC
            for sample in family.samples
            if sample.name == FRONTEND_HELD_METRIC and sample.labels.get("model") == model
        )
    )


class PodAddresses:
    """host:port of a pod's /metrics: its IP and the http port every kubechat container serves on.

    For tests only (docs/operator.md): KUBECHAT_SCRAPE_ADDRESSES names a JSON file {"namespace/pod":
    "host:port"}, read each round, and pods it does not list are not scraped at all (unknown). The
    integration tests' pods are kwok's, which run nothing at addresses that lead off the machine."""

    def __init__(self, override_file: str = "") -> None:
        self.override_file = override_file

    def resolver(self) -> dict[str, str] | None:
        """This round's override map, or None to use the pods' own addresses."""
        if not self.override_file:
            return None
        try:
            return json.loads(Path(self.override_file).read_text() or "{}")
        except (OSError, ValueError):
            logger.warning("cannot read %s; scraping no pod this round", self.override_file)
            return {}

    @staticmethod
    def address(pod: Manifest, override: dict[str, str] | None) -> str | None:
        meta = pod["metadata"]
        if override is not None:
            return override.get(f"{meta.get('namespace', '')}/{meta['name']}")
        ip = (pod.get("status") or {}).get("podIP")
        return f"{ip}:{HTTP_PORT}" if ip else None


async def fetch_metrics(session: aiohttp.ClientSession, address: str | None, target: str) -> str | None:
    """The /metrics text at address, or None (no address, an error, a timeout, a body too large)."""
    if address is None:
        AUTOSCALER_SCRAPES.labels(target, "error").inc()
        return None
    try:
        async with session.get(f"http://{address}/metrics", timeout=TIMEOUT) as response:
            body = await response.content.read(MAX_BODY_BYTES + 1)
            if response.status != 200 or len(body) > MAX_BODY_BYTES:
                raise ValueError(f"HTTP {response.status}, {len(body)} bytes")
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        logger.debug("scraping %s failed: %s", address, exc)
        AUTOSCALER_SCRAPES.labels(target, "error").inc()
        return None
    AUTOSCALER_SCRAPES.labels(target, "ok").inc()
    return body.decode(errors="replace")


async def scrape_model_pod(session: aiohttp.ClientSession, address: str | None) -> int | None:
    text = await fetch_metrics(session, address, "model")
    try:
        return None if text is None else model_load(text)
    except ValueError:
        return None  # not Prometheus text


async def scrape_frontend_pod(session: aiohttp.ClientSession, address: str | None, model: str) -> int | None:
    text = await fetch_metrics(session, address, "frontend")
    try:
        return None if text is None else held_requests(text, model)
    except ValueError:
        return None
