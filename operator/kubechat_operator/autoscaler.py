"""The request autoscaler: every few seconds, for each ChatModel with autoscaling.metric requests, read the
load its ready pods and its ChatFrontends' pods report, decide (autoscaler_decision.py) and write the
replicas through the ChatModel's scale subresource; the reconcile then sizes the Deployment.

It runs inside Kopf's event loop, so only in the replica that holds the leader Lease (cli.py starts Kopf only
then). The watch handlers (main.py) keep its view of the models and frontends current; the pod watch fills
runtime.pods, so a round lists nothing. Kopf timers would do the scheduling but put a finalizer on every
ChatModel, which would block its deletion whenever the operator is not running.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from datetime import UTC, datetime

import aiohttp
from pydantic import ValidationError

from kubechat_operator import API_VERSION, metrics
from kubechat_operator.autoscaler_decision import Decision, History, Observation, Policy, decide
from kubechat_operator.autoscaler_scrape import PodAddresses, scrape_frontend_pod, scrape_model_pod
from kubechat_operator.builders.chatfrontend import COMPONENT as FRONTEND_COMPONENT
from kubechat_operator.builders.chatmodel import COMPONENT as MODEL_COMPONENT
from kubechat_operator.builders.common import selector_labels
from kubechat_operator.kube import Manifest
from kubechat_operator.reconciler import Runtime
from kubechat_operator.spec import ChatModelSpec, Resource

logger = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, name)
MAX_CONNECTIONS = 64  # scrapes in flight at once over all models


def _ready(pod: Manifest) -> bool:
    status = pod.get("status") or {}
    return not pod["metadata"].get("deletionTimestamp") and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
    )


def _scales_on_requests(body: Manifest) -> bool:
    autoscaling = (body.get("spec") or {}).get("autoscaling")
    return bool(autoscaling) and autoscaling.get("metric", "requests") == "requests"


class RequestAutoscaler:
    """The ChatModels to scale and the frontends that offer them, as the watches report them."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.addresses = PodAddresses(runtime.config.scrape_addresses_file)
        self.models: dict[Key, Manifest] = {}
        self.histories: dict[str, History] = {}  # by ChatModel uid
        self.frontend_models: dict[Key, set[str]] = {}  # ChatFrontend -> the ChatModels it offers

    def observe_model(self, event_type: str | None, body: Manifest) -> None:
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        if event_type != "DELETED" and _scales_on_requests(body):
            self.models[key] = copy.deepcopy(dict(body))
            return
        gone = self.models.pop(key, None)
        if gone is not None:
            self.histories.pop(gone["metadata"]["uid"], None)
            for gauge in (metrics.AUTOSCALER_DESIRED, metrics.AUTOSCALER_LOAD, metrics.AUTOSCALER_UNKNOWN):
                gauge.remove(*key)

    def observe_frontend(self, event_type: str | None, body: Manifest) -> None:
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        if event_type == "DELETED":
            self.frontend_models.pop(key, None)
        else:
            models = (body.get("spec") or {}).get("models") or []
            self.frontend_models[key] = {m.get("name") for m in models}

    async def run(self, interval_s: float) -> None:
        """Rounds until cancelled (at the operator's cleanup)."""
        connector = aiohttp.TCPConnector(limit=MAX_CONNECTIONS)
        async with aiohttp.ClientSession(connector=connector) as session:
            while True:
                started = time.perf_counter()
                await asyncio.gather(*(self._scale_one(session, key) for key in list(self.models)))
                metrics.AUTOSCALER_ROUND_SECONDS.observe(time.perf_counter() - started)
                await asyncio.sleep(max(0.0, interval_s - (time.perf_counter() - started)))

    def _pods(self, namespace: str, kind: str, name: str, component: str) -> list[Manifest]:
        owner = Resource(api_version=API_VERSION, kind=kind, name=name, namespace=namespace, uid="")
        pods = self.runtime.pods.select(namespace, selector_labels(owner, component))
        return [pod for pod in pods if _ready(pod)]

    async def _observe(self, session: aiohttp.ClientSession, key: Key, replicas: int) -> Observation:
        namespace, name = key
        override = self.addresses.resolver()
        model_pods = self._pods(namespace, "ChatModel", name, MODEL_COMPONENT)
        frontend_pods = [
            pod
            for (ns, frontend), offered in list(self.frontend_models.items())
            if ns == namespace and name in offered
            for pod in self._pods(namespace, "ChatFrontend", frontend, FRONTEND_COMPONENT)
        ]
        address = self.addresses.address
        loads = [scrape_model_pod(session, address(p, override)) for p in model_pods]
        held = [scrape_frontend_pod(session, address(p, override), name) for p in frontend_pods]
        results = await asyncio.gather(*loads, *held)
        return Observation(replicas, tuple(results[: len(loads)]), tuple(results[len(loads) :]))

    async def _scale_one(self, session: aiohttp.ClientSession, key: Key) -> None:
        body = self.models.get(key)
        if body is None:
            return
        try:
            spec = ChatModelSpec.model_validate(body.get("spec") or {})
        except ValidationError:
            return  # the reconcile reports an unusable spec
        try:
            replicas = spec.replicas
            uid = body["metadata"]["uid"]
            history = self.histories.setdefault(uid, History.starting_at(replicas, time.monotonic()))
            observed = await self._observe(session, key, replicas)
            decision = decide(Policy.from_spec(spec), observed, history, time.monotonic())
            await asyncio.to_thread(self._apply, body, spec, observed, decision)
        except Exception:
            logger.exception("autoscaling ChatModel %s/%s failed; trying again next round", *key)

    def _apply(self, body: Manifest, spec: ChatModelSpec, observed: Observation, decision: Decision) -> None:
        """Write the replicas (if they change), an Event, the metrics and status.autoscaling."""
        kube = self.runtime.kube
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        previous = (body.get("status") or {}).get("autoscaling") or {}
        status = {
            "metric": "requests",
            "targetRequestsPerReplica": spec.target_requests_per_replica,
            "observedLoad": observed.load,
            "heldRequests": observed.held_total,
            "unknownPods": observed.unknown,
            "desiredReplicas": decision.replicas,
            "currentReplicas": (body.get("status") or {}).get("replicas", 0),
            **{k: v for k, v in previous.items() if k.startswith("lastScale")},
        }
        if decision.reason is not None:
            kube.merge_patch("ChatModel", namespace, name, {"spec": {"replicas": decision.replicas}}, "scale")
            body["spec"]["replicas"] = decision.replicas  # until the watch brings the new generation
            message = f"scaled from {observed.replicas} to {decision.replicas} replicas: {decision.message}"
            status.update(
                lastScaleTime=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                lastScaleReason=decision.reason,
                lastScaleMessage=message,
            )
            self.runtime.events.post(body, "Normal", decision.reason, message)
            metrics.AUTOSCALER_SCALES.labels(decision.reason).inc()
            logger.info("ChatModel %s/%s %s", namespace, name, message)
        if (namespace, name) not in self.models:
            return  # deleted or no longer scaled on requests while this round ran: leave no series behind
        metrics.AUTOSCALER_DESIRED.labels(namespace, name).set(decision.replicas)
        metrics.AUTOSCALER_LOAD.labels(namespace, name).set(observed.load)
        metrics.AUTOSCALER_UNKNOWN.labels(namespace, name).set(observed.unknown)
        if status != previous:
            kube.merge_patch("ChatModel", namespace, name, {"status": {"autoscaling": status}}, "status")
            body.setdefault("status", {})["autoscaling"] = status
