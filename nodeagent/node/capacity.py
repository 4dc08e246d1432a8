"""What this node offers pods: its capacity, which is also its allocatable.

One function for the Node's status (``agent.node_status``) and for the pods'
environment (``resourceFieldRef`` limits that are not set default to the node's
allocatable, as kubelet's do). Nothing is reserved for the system.
"""

from __future__ import annotations

import os

MAX_PODS = "110"


def capacity() -> dict[str, str]:
    """cpu (the host's CPUs), memory (its RAM in Ki), pods."""
    cpus = str(os.cpu_count() or 1)
    try:
        mem_kib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 1024
    except (ValueError, OSError):
        mem_kib = 0
    return {"cpu": cpus, "memory": f"{mem_kib}Ki", "pods": MAX_PODS}
