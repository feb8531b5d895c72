"""The engine: one model instance, a bounded queue, and a worker thread that batches what waits.

The worker takes the first waiting request, waits up to ``max_queue_delay_ms`` for more (until
``max_batch_size``) and starts a batch (see ``batch.py``). Requests that arrive while it runs join it
between two tokens (continuous batching), in groups. The HTTP side never blocks: it submits and awaits
events on its own loop.

Admission: a multi-item request (several prompts or dialogs, ``n`` choices) is queued all or nothing;
requests whose deadline passed while they waited are answered ``timeout`` without a prefill; a newcomer
whose prefill fails fails alone (the running batch goes on). A failure of the running batch itself (a
decoding step or merging newcomers into it) fails its rows and marks the engine faulted: the model state
may be broken (a CUDA error is sticky), so readiness and liveness turn 503 and the kubelet restarts the pod.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from kubechat_server.engine.batch import Batch, NewcomerError, start_batch
from kubechat_server.engine.loader import LoadedModel
from kubechat_server.engine.requests import Finished, GenerationRequest
from kubechat_server.engine.sampling import SamplingParams, device_generator
from kubechat_server.metrics import ServerMetrics

log = logging.getLogger("kubechat_server.engine")


class QueueFullError(RuntimeError):
    """The queue cannot take the request (all its items) now; the client should retry later."""


class EngineStoppedError(RuntimeError):
    """The engine is draining, stopped or faulted and takes no new work."""


@dataclass(frozen=True)
class WorkItem:
    """One generation to queue: prompt token ids and how to sample."""

    prompt_ids: list[int]
    params: SamplingParams


def new_requests(
    items: list[WorkItem],
    timeout_s: float,
    stream: bool,
    hide_scratchpad: bool,
    on_finish: Callable[[GenerationRequest, Finished], None],
) -> list[GenerationRequest]:
    """One request per item, sharing one deadline; their events arrive on the calling asyncio loop."""
    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + timeout_s
    return [
        GenerationRequest(
            prompt_ids=list(item.prompt_ids),
            params=item.params,
            loop=loop,
            deadline=deadline,
            streams_text=stream,
            hide_scratchpad=hide_scratchpad,
            on_finish=on_finish,
        )
        for item in items
    ]


class EngineSeam:
    """What the routes call on every engine (transformers, llama.cpp): queue one request or several."""

    def submit(
        self,
        prompt_ids: list[int],
        params: SamplingParams,
        timeout_s: float,
        stream: bool = False,
        hide_scratchpad: bool = False,
    ) -> GenerationRequest:
        """Queue a request; its events arrive on the calling asyncio loop (text deltas only if ``stream``)."""
        return self.submit_many([WorkItem(prompt_ids, params)], timeout_s, stream, hide_scratchpad)[0]

    def submit_many(
        self,
        items: list[WorkItem],
        timeout_s: float,
        stream: bool = False,
        hide_scratchpad: bool = False,
    ) -> list[GenerationRequest]:
        """Queue all ``items`` or none of them (``QueueFullError`` when they do not all fit)."""
        raise NotImplementedError


class Engine(EngineSeam):
    """Accepts generation requests from any asyncio loop and runs them in batches on one thread."""

    def __init__(
        self,
        loaded: LoadedModel,
        metrics: ServerMetrics,
        max_batch_size: int = 16,
        max_queue_delay_ms: float = 10.0,
        max_queue: int = 256,
    ):
        self.loaded = loaded
        self.metrics = metrics
        self.max_batch_size = max_batch_size
        self.max_delay = max_queue_delay_ms / 1000.0
        self.max_queue = max_queue
        # On the model's device: sampling draws its random numbers next to the probabilities.
        self.generator = device_generator(loaded.device)
        self.fault: str | None = None
        self._queue: collections.deque[GenerationRequest] = collections.deque()
        self._cond = threading.Condition()
        self._accepting = True
        self._running = 0
        self._stopped = False
        self._thread = threading.Thread(target=self._work, name="kubechat-engine", daemon=True)
        self._thread.start()

    def submit_many(
        self,
        items: list[WorkItem],
        timeout_s: float,
        stream: bool = False,
        hide_scratchpad: bool = False,
    ) -> list[GenerationRequest]:
        """Queue all ``items`` or none of them (``QueueFullError`` when they do not all fit)."""
        requests = new_requests(items, timeout_s, stream, hide_scratchpad, on_finish=self._finished)
        with self._cond:
            if self.fault is not None:
                raise EngineStoppedError(f"the engine failed and awaits a restart: {self.fault}")
            if not self._accepting:
                raise EngineStoppedError("the server is shutting down")
            if len(self._queue) + len(requests) > self.max_queue:
                raise QueueFullError(
                    f"the queue cannot take {len(requests)} more request(s) "
                    f"({len(self._queue)} of {self.max_queue} places taken)"
                )
            self._queue.extend(requests)
            self.metrics.set_waiting(len(self._queue))
            self._cond.notify()
        for request in requests:
            self.metrics.prompt_tokens.inc(len(request.prompt_ids))
        return requests

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    @property
    def running(self) -> int:
        return self._running

    def stop_accepting(self) -> None:
        """Refuse new work (draining); what is queued still runs."""
        with self._cond:
            self._accepting = False

    def wait_idle(self, timeout: float) -> bool:
        """Block until nothing waits or runs; returns False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._running:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self) -> None:
        """Stop the worker thread once the queue is empty."""
        with self._cond:
            self._accepting = False
            self._stopped = True
            self._cond.notify_all()
        self._thread.join(timeout=30)

    def _take(self, limit: int, wait: bool) -> list[GenerationRequest] | None:
        """Up to ``limit`` waiting requests. With ``wait``, block for the first and give others
        ``max_queue_delay_ms`` (from the oldest's arrival) to join; returns None when the engine stops.
        Cancelled and expired requests are answered here, before they cost a prefill."""
        with self._cond:
            if wait:
                while not self._queue and not self._stopped:
                    self._cond.wait()
                if not self._queue:
                    return None
                until = self._queue[0].submitted + self.max_delay
                while len(self._queue) < limit and not self._stopped:
                    left = until - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
            taken = [self._queue.popleft() for _ in range(min(limit, len(self._queue)))]
            self._running += len(taken)
            self.metrics.set_waiting(len(self._queue))
        live = []
        now = time.monotonic()
        for request in taken:
            if request.cancelled.is_set():
                self.metrics.dropped.labels(reason="cancelled").inc()
                request.emit(Finished("cancelled", "", len(request.prompt_ids), 0))
            elif now > request.deadline:
                self.metrics.dropped.labels(reason="expired").inc()
                request.emit(Finished("timeout", "", len(request.prompt_ids), 0))
            else:
                live.append(request)
        return live

    def _joining(self, batch: Batch) -> list[GenerationRequest]:
        """Requests that may join ``batch`` now: once the oldest waited ``max_queue_delay_ms`` or enough wait
        to fill the batch, so that arrivals join in groups (each join costs a prefill and a cache merge)."""
        free = self.max_batch_size - batch.size
        if free <= 0 or not self._queue or not batch.can_admit():
            return []
        oldest = self._queue[0].submitted
        if len(self._queue) < free and time.monotonic() - oldest < self.max_delay:
            return []
        return self._take(free, wait=False) or []

    def _work(self) -> None:
        batch: Batch | None = None
        while True:
            requests: list[GenerationRequest] = []
            try:
                if batch is None:
                    requests = self._take(self.max_batch_size, wait=True)
                    if requests is None:
                        return
                    if requests:
                        batch = self._start(requests)
                else:
                    requests = self._joining(batch)
                    if requests:
                        batch.admit(requests)
                        self.metrics.batch_size.observe(batch.size)
                if batch is not None:
                    self.metrics.generated_tokens.inc(batch.step())
                    if batch.size == 0:
                        batch = None
            except NewcomerError as exc:  # their prompts failed on their own: the running batch goes on
                log.error("prefill of %d joining request(s) failed: %s", len(requests), exc.__cause__)
                self._fail(requests, exc.__cause__ or exc)
            except Exception as exc:  # the running batch failed: its state may be broken
                log.exception("generation failed")
                self.fault = f"{type(exc).__name__}: {exc}"[:500]
                failed = {id(r): r for r in requests or []}
                failed.update({id(row.request): row.request for row in batch.rows} if batch else {})
                self._fail(list(failed.values()), exc)
                batch = None
            self._set_running(batch.size if batch is not None else 0)

    def _start(self, requests: list[GenerationRequest]) -> Batch | None:
        """A new batch of ``requests``; if their prefill fails, they fail and the engine waits for more."""
        try:
            batch = start_batch(self.loaded, requests, self.generator, self._first_token)
        except Exception as exc:
            log.exception("prefill of %d request(s) failed", len(requests))
            self._fail(requests, exc)
            return None
        self.metrics.batch_size.observe(batch.size)
        return batch

    @staticmethod
    def _fail(requests: list[GenerationRequest], exc: BaseException) -> None:
        for request in requests:
            request.emit(Finished("error", "", len(request.prompt_ids), 0, error=str(exc)))

    def _set_running(self, running: int) -> None:
        with self._cond:
            self._running = running
            self._cond.notify_all()
        self.metrics.set_running(running)

    def _first_token(self, request: GenerationRequest) -> None:
        request.first_token_at = time.monotonic()
        self.metrics.ttft.observe(request.first_token_at - request.submitted)

    def _finished(self, request: GenerationRequest, finished: Finished) -> None:
        self.metrics.request_finished(request, finished)
