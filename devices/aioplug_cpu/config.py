"""The CPU device's properties, and how streams and threads follow from them.

``PERFORMANCE_HINT=LATENCY``: one stream using every core inside BLAS. ``THROUGHPUT``: one
stream per core (or ``NUM_STREAMS``), one BLAS thread each. ``INFERENCE_NUM_THREADS`` caps
the threads of one inference. numpy releases the GIL inside BLAS, so streams compute at once.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEVICE_NAME = "CPU"
VERSION = "0.1.0"


def full_device_name() -> str:
    """The processor's name, as the OS reports it."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "CPU"


def cores() -> int:
    """Cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - platforms without affinity
        return os.cpu_count() or 1


@dataclass(frozen=True)
class Streams:
    """How many requests compute at once, and BLAS threads for each."""

    streams: int
    threads_per_stream: int


def streams_for(config: Mapping[str, Any]) -> Streams:
    """Derives streams and threads from the hint, NUM_STREAMS and INFERENCE_NUM_THREADS."""
    n_cores = cores()
    threads = int(config.get("INFERENCE_NUM_THREADS", 0) or 0) or n_cores
    requested = int(config.get("NUM_STREAMS", -1))
    hint = config.get("PERFORMANCE_HINT", "LATENCY")
    if requested > 0:
        streams = requested
    elif hint == "LATENCY":
        streams = 1
    else:
        streams = n_cores
    return Streams(streams, max(1, threads // streams))
