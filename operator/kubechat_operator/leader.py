"""Leader election on a coordination.k8s.io Lease: of several operator replicas exactly one reconciles.

The others wait; when the leader stops renewing (crash, node loss) the lease expires and one takes over.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from kubernetes.client.rest import ApiException

from kubechat_operator.kube import Kube, Manifest

logger = logging.getLogger(__name__)


def _micro_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElection:
    """Acquire and keep the Lease namespace/name under identity."""

    def __init__(self, kube: Kube, namespace: str, name: str, identity: str, duration_s: int = 15) -> None:
        self.kube, self.namespace, self.name, self.identity = kube, namespace, name, identity
        self.duration_s = duration_s
        # Like client-go, expiry is judged on this process's monotonic clock from when it last saw the lease
        # record change, never by comparing the holder's renewTime with the local wall clock (clocks skew).
        self._observed_record: tuple[object, ...] | None = None
        self._observed_at = 0.0

    def _expired(self, spec: Manifest) -> bool:
        record = (spec.get("holderIdentity"), spec.get("renewTime"), spec.get("leaseTransitions"))
        if record != self._observed_record:
            self._observed_record, self._observed_at = record, time.monotonic()
        duration = spec.get("leaseDurationSeconds") or self.duration_s
        return time.monotonic() > self._observed_at + duration

    def _lease(self, previous: Manifest | None, transitions: int) -> Manifest:
        now = datetime.now(UTC)
        acquired = (previous or {}).get("spec", {}).get("acquireTime") if transitions == 0 else None
        metadata: Manifest = {"name": self.name, "namespace": self.namespace}
        if previous:
            metadata["resourceVersion"] = previous["metadata"]["resourceVersion"]
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": self.duration_s,
                "acquireTime": acquired or _micro_time(now),
                "renewTime": _micro_time(now),
                "leaseTransitions": ((previous or {}).get("spec", {}).get("leaseTransitions") or 0)
                + transitions,
            },
        }

    def try_acquire(self) -> bool:
        """Take or renew the lease if it is free, expired or ours; False if another holder is live."""
        try:
            lease = self.kube.get("Lease", self.namespace, self.name)
            if lease is None:
                self.kube.create(self._lease(None, 0))
                return True
            spec = lease.get("spec", {})
            holder = spec.get("holderIdentity")
            if holder and holder != self.identity and not self._expired(spec):
                return False
            self.kube.replace(self._lease(lease, 0 if holder == self.identity else 1))
            return True
        except ApiException as exc:
            if exc.status == 409:  # someone else won the race
                return False
            raise

    def wait_for_leadership(self, stop: threading.Event, retry_s: float = 2.0) -> bool:
        """Block until this replica leads (True) or stop is set (False)."""
        logger.info("waiting to lead (lease %s/%s as %s)", self.namespace, self.name, self.identity)
        while not stop.is_set():
            if self.try_acquire():
                logger.info("leading as %s", self.identity)
                return True
            stop.wait(retry_s)
        return False

    def keep(self, on_lost: Callable[[], None], renew_s: float = 5.0) -> threading.Thread:
        """Renew in a daemon thread; call on_lost once when the lease cannot be renewed before it expires."""

        def renew() -> None:
            last_ok = datetime.now(UTC)
            while True:
                time.sleep(renew_s)
                try:
                    ok = self.try_acquire()
                except Exception:
                    logger.exception("lease renewal failed")
                    ok = False
                if ok:
                    last_ok = datetime.now(UTC)
                elif datetime.now(UTC) - last_ok > timedelta(seconds=self.duration_s - renew_s):
                    logger.error("lost the lease %s/%s; stopping", self.namespace, self.name)
                    on_lost()
                    return

        thread = threading.Thread(target=renew, name="lease-renewal", daemon=True)
        thread.start()
        return thread

    def release(self) -> None:
        """Give the lease up so a standby takes over at once instead of after it expires."""
        try:
            lease = self.kube.get("Lease", self.namespace, self.name)
            if lease and lease.get("spec", {}).get("holderIdentity") == self.identity:
                lease["spec"]["holderIdentity"] = ""
                self.kube.replace(lease)
        except ApiException:
            logger.warning("could not release the lease %s/%s", self.namespace, self.name)
