"""Holding requests while a model wakes: a model with no ready replica (scaled to zero, every pod starting or
draining) is waited for, in a bounded per-model queue with a timeout, instead of failing the request.

While requests wait, `kubechat_frontend_waiting_requests{model}` says how many (the operator's autoscaler
reads it from the frontend pods and scales a ChatModel at zero up to one). A held request goes on when the
model's server passes its readiness check; it is refused with 503 and `Retry-After` when the timeout passes,
or at once when the model's queue is full. The page shows what the model is doing meanwhile (`Waking`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kubechat_frontend import metrics
from kubechat_frontend.chatmodel_status import DELETED, ChatModelStatus
from kubechat_frontend.errors import ApiError

if TYPE_CHECKING:
    from kubechat_frontend.upstream import ModelClient

log = logging.getLogger("kubechat_frontend")

# Answers of a model server that mean "no ready pod behind this Service right now", not "this request is bad".
NOT_READY_CODES = {"model_not_ready", "shutting_down"}
# How often a waiting request looks again: a model takes seconds to minutes to wake, so a second is prompt
# enough, and the look is shared by every request waiting in this process (one probe per second per model).
POLL_S = 1.0
QUEUE_FULL_RETRY_S = 5
TIMED_OUT_RETRY_S = 10


@dataclass(frozen=True)
class Waking:
    """What a model that is not ready is doing: `phase` is one of asleep, scheduling, starting, downloading,
    loading, warming, ready (the server is, its pod's readiness not yet), failed, deleted; `percent` only
    while downloading."""

    phase: str
    message: str = ""
    percent: float | None = None
    final: bool = False  # it will not wake without a change: waiting is pointless

    def to_dict(self) -> dict[str, Any]:
        shown = {"phase": self.phase, "message": self.message}
        return shown if self.percent is None else {**shown, "percent": round(self.percent, 1)}


def describe(chatmodel: dict[str, Any] | None, readiness: dict[str, Any] | None) -> Waking:
    """The waking state from the ChatModel the apiserver shows (`{spec, status}`, None when unknown) and the
    model server's readiness answer (None when nothing answered)."""
    if chatmodel is DELETED:
        return Waking("deleted", "Its ChatModel does not exist (it was deleted).", final=True)
    if chatmodel is not None:
        spec, status = chatmodel["spec"], chatmodel["status"]
        pods = (status.get("loadProgress") or {}).get("pods") or []
        if pods:
            slowest = pods[0]  # the operator sorts the least advanced first
            return _from_progress(slowest)
        if spec.get("replicas", 1) == 0:
            return Waking("asleep", "The model is scaled to zero; asking for a replica.")
        if status.get("phase") == "Failed":
            # The operator's verdict: it will not come up without a change to the ChatModel.
            return Waking("failed", str(status.get("message") or status.get("reason") or ""), final=True)
        if status.get("reason") == "Unschedulable":
            return Waking("scheduling", str(status.get("message", "")))
        return Waking("starting", str(status.get("message") or "A model-server pod is starting."))
    load = (readiness or {}).get("load")
    if isinstance(load, dict) and load.get("stage"):
        return _from_progress(load)
    return Waking("starting", "Waiting for the model server to come up.")


def _from_progress(report: dict[str, Any]) -> Waking:
    percent = report.get("percent")
    stage = str(report.get("stage", ""))
    return Waking(
        stage or "starting",
        str(report.get("message", "")),
        float(percent) if isinstance(percent, int | float) and stage == "downloading" else None,
    )


class ModelStates:
    """Whether each model is ready, and if not what it is doing; looked up at most once per `ttl_s` per model
    in this process, however many requests ask."""

    def __init__(
        self,
        probe: Callable[[str], tuple[bool, dict[str, Any] | None]],
        chatmodels: ChatModelStatus | None,
        ttl_s: float = POLL_S,
    ) -> None:
        self._probe = probe
        self._chatmodels = chatmodels
        self._ttl_s = ttl_s
        self._known: dict[str, tuple[float, Waking | None]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    def current(self, model: str, *, fresh: bool = False) -> Waking | None:
        """None when the model is ready, else what it is doing; `fresh`: looked up after this call began (the
        caller has just seen the model fail where the last look said ready)."""
        asked = time.monotonic()
        with self._locks_lock:
            lock = self._locks.setdefault(model, threading.Lock())
        with lock:  # one look per model at a time; those who waited for it share its verdict
            known = self._known.get(model)
            if known and (known[0] >= asked or (not fresh and asked - known[0] < self._ttl_s)):
                return known[1]
            ready, readiness = self._probe(model)
            waking = None
            if not ready:
                chatmodel = self._chatmodels.get(model) if self._chatmodels is not None else None
                waking = describe(chatmodel, readiness)
            self._known[model] = (time.monotonic(), waking)
            return waking

    def close(self) -> None:
        if self._chatmodels is not None:
            self._chatmodels.close()


class WaitingRoom:
    """At most `max_waiting` requests per model wait in this process, each at most `timeout_s`."""

    def __init__(self, states: ModelStates, timeout_s: float, max_waiting: int) -> None:
        self.states = states
        self._timeout_s = timeout_s
        self._max_waiting = max_waiting
        self._waiting: dict[str, int] = {}
        self._lock = threading.Lock()

    def show(self, models: list[str]) -> None:
        """Publish the gauge at 0 for each model, so that a scraper sees the series before anyone waits."""
        for model in models:
            metrics.WAITING.labels(model=model).set(0)

    def enter(self, model: str) -> Hold:
        """A place in the model's queue; 503 at once when it is full."""
        with self._lock:
            if self._waiting.get(model, 0) >= self._max_waiting:
                raise ApiError(
                    503,
                    f"The model {model!r} is waking up and {self._max_waiting} requests already wait for it; "
                    "try again shortly.",
                    "model_waking_queue_full",
                    retry_after=QUEUE_FULL_RETRY_S,
                )
            self._waiting[model] = self._waiting.get(model, 0) + 1
        metrics.WAITING.labels(model=model).inc()
        return Hold(self, model, time.monotonic() + self._timeout_s)

    def leave(self, model: str) -> None:
        with self._lock:
            self._waiting[model] -= 1
        metrics.WAITING.labels(model=model).dec()

    def wait(self, model: str) -> None:
        """Block until the model is ready (nothing to show: for API callers); `ApiError` 503 if it is not."""
        with self.enter(model) as hold:
            for _ in hold.progress():
                pass


def waiting_room(settings: dict[str, Any], models: ModelClient) -> WaitingRoom | None:
    """The waiting room the settings ask for (`WAKE_MAX_WAITING: 0` turns holding off); `models` is the
    `ModelClient` whose servers' readiness decides."""
    max_waiting = settings["WAKE_MAX_WAITING"]
    if max_waiting <= 0:
        return None
    # A held request keeps one of the worker's threads (kubechat-frontend's KUBECHAT_FRONTEND_THREADS): at
    # most half of them may wait, so that /metrics (which the autoscaler must read to wake the model), the
    # probes and other models' chats are still served.
    threads = int(os.environ.get("KUBECHAT_FRONTEND_THREADS", "512"))  # cli.serve's default
    if max_waiting > threads // 2:
        log.warning("WAKE_MAX_WAITING %d lowered to %d: half the worker's threads", max_waiting, threads // 2)
        max_waiting = max(1, threads // 2)
    states = ModelStates(models.readiness, ChatModelStatus.from_settings(settings))
    room = WaitingRoom(states, settings["WAKE_TIMEOUT_S"], max_waiting)
    room.show(models.names)
    return room


class Hold:
    """One waiting request; a context manager that gives its place back."""

    def __init__(self, room: WaitingRoom, model: str, deadline: float) -> None:
        self._room, self.model, self._deadline = room, model, deadline
        self._open = True

    def progress(self) -> Iterator[Waking]:
        """What the model is doing, about every second, until it is ready; 503 when the time is up."""
        waking = self._room.states.current(self.model)
        if waking is None:  # the caller saw it fail: a look from before that does not count
            waking = self._room.states.current(self.model, fresh=True)
        while waking is not None:
            if waking.phase == "deleted":
                # Like OpenAI's answer for a model that does not exist: not found, and no point retrying.
                raise ApiError(
                    404,
                    f"The model {self.model!r} was deleted: its ChatModel no longer exists. Choose another "
                    "model, or ask the cluster's operator to create it again.",
                    "model_deleted",
                )
            if waking.final:
                raise ApiError(
                    503,
                    f"The model {self.model!r} cannot start: {waking.message}",
                    "model_failed",
                    retry_after=TIMED_OUT_RETRY_S,
                )
            yield waking
            left = self._deadline - time.monotonic()
            if left <= 0:
                raise ApiError(
                    503,
                    f"The model {self.model!r} did not wake up in time ({waking.phase}: {waking.message}). "
                    "Your conversation is safe; try again shortly.",
                    "model_waking_timeout",
                    retry_after=TIMED_OUT_RETRY_S,
                )
            time.sleep(min(POLL_S, left))
            waking = self._room.states.current(self.model)

    def close(self) -> None:
        if self._open:
            self._open = False
            self._room.leave(self.model)

    def __enter__(self) -> Hold:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
