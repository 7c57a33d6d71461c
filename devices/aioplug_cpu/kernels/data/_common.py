"""Helpers shared by the data-family kernels: the kernel wrapper and axis arithmetic."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "FnKernel",
    "int_list",
    "normalize_axes",
    "normalize_axis",
    "INT64",
]

INT64 = np.dtype(np.int64)


class FnKernel:
    """A kernel made of one function: ``__call__`` forwards the inputs and returns its tuple."""

    __slots__ = ("exec_type", "fn")

    def __init__(self, fn: Callable[..., tuple[Any, ...]], exec_type: str = "numpy") -> None:
        self.fn = fn
        self.exec_type = exec_type

    def __call__(self, *inputs: Any) -> tuple[Any, ...]:
        return self.fn(*inputs)


def normalize_axis(axis: int, rank: int) -> int:
    """Maps a possibly negative ``axis`` into ``[0, rank)``; raises on out-of-range axes."""
    a = int(axis)
    if a < -rank or a >= max(rank, 1):
        raise ValueError(f"axis {axis} is out of range for rank {rank}")
    return a + rank if a < 0 else a


def normalize_axes(axes: Sequence[int] | np.ndarray, rank: int) -> list[int]:
    """Normalises every axis of ``axes`` with :func:`normalize_axis`."""
    return [normalize_axis(int(a), rank) for a in axes]


def int_list(value: Any) -> list[int]:
    """Returns a tensor or sequence of integers as a list of Python ints."""
    if value is None:
        return []
    if isinstance(value, np.ndarray):
        return [int(v) for v in value.reshape(-1).tolist()]
    return [int(v) for v in value]


def const_input(node_const: tuple[np.ndarray | None, ...], index: int) -> np.ndarray | None:
    """Returns the compile-time value of input ``index``, or None when unknown or absent."""
    return node_const[index] if index < len(node_const) else None
