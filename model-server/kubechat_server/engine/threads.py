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

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def cgroup_cpus(cpu_max: Path = CGROUP_CPU_MAX) -> int | None:
    """The CPUs a cgroup v2 quota allows (``"200000 100000"`` -> 2), rounded up; None without a quota."""
    try:
        quota, period = cpu_max.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return max(1, math.ceil(int(quota) / int(period)))


def cpu_threads(configured: int | None, cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """``configured`` when set, else the smaller of the cgroup quota and the CPUs this process may run on."""
    if configured:
        return configured
    available = len(os.sched_getaffinity(0))
    quota = cgroup_cpus(cpu_max)
    return min(available, quota) if quota else available
