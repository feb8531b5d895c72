"""The work queue collapses bursts per resource, runs one reconcile per resource at a time, and requeues."""

from __future__ import annotations

import asyncio
import threading
import time

from kubechat_operator.workqueue import Key, ReconcileQueue, Requeue, Trigger

A: Key = ("ChatModel", "ns", "a")
B: Key = ("ChatModel", "ns", "b")


def test_a_burst_of_triggers_becomes_one_merged_reconcile() -> None:
    calls: list[tuple[Key, Trigger]] = []

    async def scenario() -> None:
        queue = ReconcileQueue(lambda key, trigger: calls.append((key, trigger)), delay_s=0.05)
        queue.enqueue(A, Trigger())
        queue.enqueue(A, Trigger(children={("Service", "a"): None}))
        queue.enqueue(A, Trigger(apply_all=True))
        queue.enqueue(B, Trigger())
        await asyncio.sleep(0.3)
        queue.shutdown()

    asyncio.run(scenario())
    assert sorted(key for key, _ in calls) == [A, B]
    merged = next(trigger for key, trigger in calls if key == A)
    assert merged.apply_all and merged.children == {("Service", "a"): None}


def test_one_resource_is_never_reconciled_twice_at_once() -> None:
    running, overlaps, calls = set(), [], []
    lock = threading.Lock()

    def worker(key: Key, trigger: Trigger) -> None:
        with lock:
            overlaps.append(key in running)
            running.add(key)
        time.sleep(0.1)
        calls.append(key)
        with lock:
            running.discard(key)

    async def scenario() -> None:
        queue = ReconcileQueue(worker, delay_s=0.01)
        queue.enqueue(A, Trigger())
        await asyncio.sleep(0.05)  # the first run is in progress
        queue.enqueue(A, Trigger())
        await asyncio.sleep(0.4)
        queue.shutdown()

    asyncio.run(scenario())
    assert calls == [A, A]
    assert not any(overlaps)


def test_a_requested_requeue_runs_again_with_its_trigger() -> None:
    calls: list[Trigger] = []

    def worker(key: Key, trigger: Trigger) -> Requeue | None:
        calls.append(trigger)
        return Requeue(0.05, Trigger(apply_all=True)) if len(calls) == 1 else None

    async def scenario() -> None:
        queue = ReconcileQueue(worker, delay_s=0.01)
        queue.enqueue(A, Trigger())
        await asyncio.sleep(0.3)
        queue.shutdown()

    asyncio.run(scenario())
    assert [t.apply_all for t in calls] == [False, True]


def test_progress_reports_alone_ask_only_for_a_progress_refresh() -> None:
    trigger = Trigger(progress={"pod-a": "{}"})
    assert trigger.progress_only
    trigger.merge(Trigger(progress={"pod-a": '{"percent": 5}'}))
    assert trigger.progress == {"pod-a": '{"percent": 5}'} and trigger.progress_only
    trigger.merge(Trigger(observe=True))  # a pod changed too: the full status is due
    assert not trigger.progress_only
    assert not Trigger(apply_all=True, progress={}).progress_only
