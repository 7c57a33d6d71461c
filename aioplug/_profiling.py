"""Per-node profiling records."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import timedelta

__all__ = ["ProfilingInfo", "ProfilingStatus"]


class ProfilingStatus(str, enum.Enum):
    """Whether a node ran."""

    NOT_RUN = "NOT_RUN"
    OPTIMIZED_OUT = "OPTIMIZED_OUT"
    EXECUTED = "EXECUTED"


@dataclass(frozen=True)
class ProfilingInfo:
    """One profiling record: a node (or a pipeline stage) and the time it took."""

    node_name: str
    node_type: str
    exec_type: str
    real_time: timedelta
    cpu_time: timedelta
    status: ProfilingStatus = ProfilingStatus.EXECUTED
