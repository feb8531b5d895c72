"""A per-resource work queue: bursts of watch events for one ChatModel collapse into one reconcile.

Watch handlers only enqueue (cheap, non-blocking); reconciles run in a bounded thread pool, at most one at a
time per resource, and may ask to be run again later (requeue), e.g. while waiting for a missing ChatModel or
for pods whose volumes do not mount.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

Key = tuple[str, str, str]  # (kind, namespace, name)


@dataclass
class Trigger:
    """Why a resource is reconciled; triggers that arrive while one is pending are merged."""

    apply_all: bool = False
    # Children seen changing since the last reconcile: (kind, name) -> latest body, None when deleted.
    children: dict[tuple[str, str], dict | None] = field(default_factory=dict)
    # The workload (Deployment, pods) changed: read it again and derive the status.
    observe: bool = False
    # The latest data of the progress ConfigMap, when it changed.
    progress: dict[str, str] | None = None

    def merge(self, other: Trigger) -> None:
        self.apply_all |= other.apply_all
        self.children.update(other.children)
        self.observe |= other.observe
        if other.progress is not None:
            self.progress = other.progress

    @property
    def progress_only(self) -> bool:
        """Only load progress changed: the status needs its loadProgress refreshed, nothing else."""
        return self.progress is not None and not (self.apply_all or self.children or self.observe)


@dataclass(frozen=True)
class Requeue:
    """A reconcile's wish to run again: after after_s, with trigger (apply_all after a refusal or a wait;
    observe only to read the pods again)."""

    after_s: float
    trigger: Trigger


Worker = Callable[[Key, Trigger], Requeue | None]


class ReconcileQueue:
    """Debounces triggers per key and runs the worker for each key serially in a thread pool."""

    def __init__(self, worker: Worker, workers: int = 8, delay_s: float = 0.2) -> None:
        self._worker = worker
        self._delay_s = delay_s
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="reconcile")
        self._pending: dict[Key, Trigger] = {}
        self._tasks: dict[Key, asyncio.Task[None]] = {}
        self._requeues: dict[Key, asyncio.TimerHandle] = {}

    def enqueue(self, key: Key, trigger: Trigger) -> None:
        """Ask for a reconcile of key; must be called from the event loop's thread."""
        if key in self._pending:
            self._pending[key].merge(trigger)
        else:
            self._pending[key] = trigger
        if key not in self._tasks:
            self._tasks[key] = asyncio.get_running_loop().create_task(self._drain(key))

    async def _drain(self, key: Key) -> None:
        loop = asyncio.get_running_loop()
        try:
            while key in self._pending:
                await asyncio.sleep(self._delay_s)
                trigger = self._pending.pop(key)
                context = contextvars.copy_context()
                requeue = await loop.run_in_executor(self._pool, context.run, self._worker, key, trigger)
                # At most one requeue per key: a newer reconcile's wish replaces an older one's.
                if key in self._requeues:
                    self._requeues.pop(key).cancel()
                if requeue is not None:
                    self._requeues[key] = loop.call_later(
                        requeue.after_s, self._requeue, key, requeue.trigger
                    )
        finally:
            del self._tasks[key]

    def _requeue(self, key: Key, trigger: Trigger) -> None:
        self._requeues.pop(key, None)
        self.enqueue(key, trigger)

    @property
    def busy(self) -> int:
        """Keys with a reconcile pending or running."""
        return len(self._tasks)

    def shutdown(self) -> None:
        for handle in self._requeues.values():
            handle.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)
