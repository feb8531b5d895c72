"""The engine: one model instance, a bounded queue, and a worker thread that batches what waits.

Dynamic batching: the worker takes the first waiting request, waits up to ``max_queue_delay_ms`` for more
(until ``max_batch_size``), and generates them together (see ``batch.py``). Requests that arrive meanwhile
form the next batch. The HTTP side never blocks: it submits and awaits events on its own loop.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time

import torch

from kubechat_server.engine.batch import BatchRun
from kubechat_server.engine.loader import LoadedModel
from kubechat_server.engine.requests import Finished, GenerationRequest
from kubechat_server.engine.sampling import SamplingParams
from kubechat_server.metrics import ServerMetrics

log = logging.getLogger("kubechat_server.engine")


class QueueFullError(RuntimeError):
    """The queue holds ``max_queue`` requests already; the client should retry later."""


class EngineStoppedError(RuntimeError):
    """The engine is draining or stopped and takes no new work."""


class Engine:
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
        self.generator = torch.Generator()
        self.generator.seed()
        self._queue: collections.deque[GenerationRequest] = collections.deque()
        self._cond = threading.Condition()
        self._accepting = True
        self._running = 0
        self._stopped = False
        self._thread = threading.Thread(target=self._work, name="kubechat-engine", daemon=True)
        self._thread.start()

    def submit(self, prompt_ids: list[int], params: SamplingParams, timeout_s: float) -> GenerationRequest:
        """Queue a request; its events arrive on the calling asyncio loop."""
        request = GenerationRequest(
            prompt_ids=list(prompt_ids),
            params=params,
            loop=asyncio.get_running_loop(),
            deadline=time.monotonic() + timeout_s,
        )
        with self._cond:
            if not self._accepting:
                raise EngineStoppedError("the server is shutting down")
            if len(self._queue) >= self.max_queue:
                raise QueueFullError(f"the queue is full ({self.max_queue} requests waiting)")
            self._queue.append(request)
            self.metrics.queue_depth.set(len(self._queue))
            self._cond.notify()
        self.metrics.prompt_tokens.inc(len(prompt_ids))
        return request

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    @property
    def busy(self) -> bool:
        """Whether any request waits or runs."""
        with self._cond:
            return bool(self._queue) or self._running > 0

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

    def _take_batch(self) -> list[GenerationRequest] | None:
        with self._cond:
            while not self._queue and not self._stopped:
                self._cond.wait()
            if not self._queue:
                return None
            # Give concurrent requests a moment to join, measured from when the oldest one arrived.
            until = self._queue[0].submitted + self.max_delay
            while len(self._queue) < self.max_batch_size and not self._stopped:
                left = until - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            batch = [self._queue.popleft() for _ in range(min(self.max_batch_size, len(self._queue)))]
            self._running = len(batch)
            self.metrics.queue_depth.set(len(self._queue))
            return batch

    def _work(self) -> None:
        while True:
            batch = self._take_batch()
            if batch is None:
                return
            live = [r for r in batch if not r.cancelled.is_set()]
            for request in batch:
                if request.cancelled.is_set():
                    request.emit(Finished("cancelled", "", len(request.prompt_ids), 0))
            try:
                if live:
                    self.metrics.batch_size.observe(len(live))
                    run = BatchRun(self.loaded, live, self.generator, self._first_token)
                    self.metrics.generated_tokens.inc(run.run())
            except Exception as exc:  # a model failure must fail these requests, not the server
                log.exception("generation failed for a batch of %d", len(live))
                for request in live:
                    request.emit(Finished("error", "", len(request.prompt_ids), 0, error=str(exc)))
            finally:
                with self._cond:
                    self._running = 0
                    self._cond.notify_all()

    def _first_token(self, request: GenerationRequest) -> None:
        self.metrics.ttft.observe(time.monotonic() - request.submitted)
