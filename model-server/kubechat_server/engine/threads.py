"""How many CPU threads the engine may use: what the pod was given, not what the host has.

torch and llama.cpp size their thread pools to the host's cores. In a pod limited to 2 CPUs on a 64-core
node that means 64 threads fighting over 2 CPUs' worth of quota: measured for issue 14, a neighbour
process cut kubechat's throughput at 8 clients from 63.8 to 3.3 tok/s. The operator sets
``KUBECHAT_TORCH_THREADS`` from the ChatModel's CPU request; standalone, the cgroup's quota decides.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_cpus(root: Path = CGROUP_ROOT) -> int | None:
    """The CPUs the container's cgroup quota allows, rounded up (``"200000 100000"`` -> 2); None without a
    quota. cgroup v2's ``cpu.max``, else v1's ``cpu/cpu.cfs_quota_us`` over ``cpu.cfs_period_us``: nodes and
    Docker hosts on cgroup v1 still exist (this project's CI machine is one), and there the v2 file is
    missing, so a quota would be ignored and the pools sized to the host again."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        try:
            quota = (root / "cpu" / "cpu.cfs_quota_us").read_text().strip()
            period = (root / "cpu" / "cpu.cfs_period_us").read_text().strip()
        except OSError:
            return None
    if quota in ("max", "-1"):
        return None
    try:
        return max(1, math.ceil(int(quota) / int(period)))
    except (ValueError, ZeroDivisionError):
        return None


def cpu_threads(configured: int | None, root: Path = CGROUP_ROOT) -> int:
    """``configured`` when set, else the smaller of the cgroup quota and the CPUs this process may run on."""
    if configured:
        return configured
    available = len(os.sched_getaffinity(0))
    quota = cgroup_cpus(root)
    return min(available, quota) if quota else available
