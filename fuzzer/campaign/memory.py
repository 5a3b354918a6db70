"""Resident memory of the whole campaign (parent, workers, whatever they started), read from /proc."""

from __future__ import annotations

import os

from fuzzer.workers.pool import MIB, descendants, resident_bytes


def campaign_rss_mb(worker_pids: list[int | None]) -> float:
    """RSS in MiB of this process, its descendants, and each worker's session (orphaned grandchildren
    of a worker are re-parented to init but stay in the worker's session)."""
    me = os.getpid()
    pids = {me, *descendants(me)}
    for pid in worker_pids:
        if pid:
            pids.add(pid)
            pids.update(descendants(pid))
    return resident_bytes(sorted(pids)) / MIB
