"""Window geometry shared by convolution and pooling: strides, dilations, pads, auto_pad.

For an input length ``n``, kernel ``k``, stride ``s``, dilation ``d`` (window ``e = (k-1)d+1``):

* explicit pads ``b``/``f``: ``out = floor((n + b + f - e) / s) + 1``; with ``ceil_mode`` the
  division rounds up, and a last window that would start in the end padding is dropped;
* ``SAME_UPPER``/``SAME_LOWER``: ``out = ceil(n / s)``, total padding
  ``max(0, (out-1)s + e - n)``, its odd unit at the end (UPPER) or the beginning (LOWER);
* ``VALID``: no padding, ``out = floor((n - e) / s) + 1``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._registry import KernelNode
from ._common import Array

__all__ = [
    "FlatTaps",
    "Geometry",
    "Window",
    "crop_flat",
    "flat_buffer",
    "flat_taps",
    "pad_input",
    "split_phases",
    "window_attrs",
]


@dataclass(frozen=True)
class Window:
    """The window attributes of a conv or pool node, for ``rank`` spatial axes."""

    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    dilations: tuple[int, ...]
    pads: tuple[int, ...]
    """Explicit pads ``[b1..bn, e1..en]``; ignored when ``auto_pad`` is not NOTSET."""
    auto_pad: str
    ceil_mode: bool = False

    def geometry(self, spatial: Sequence[int]) -> Geometry:
        """Returns output sizes and begin/end pads for the input spatial sizes."""
        rank = len(self.kernel)
        out: list[int] = []
        begin: list[int] = []
        end: list[int] = []
        for i in range(rank):
            n, k, s, d = int(spatial[i]), self.kernel[i], self.strides[i], self.dilations[i]
            e = (k - 1) * d + 1
            if self.auto_pad in ("SAME_UPPER", "SAME_LOWER"):
                o = -(-n // s)
                total = max(0, (o - 1) * s + e - n)
                b = total // 2 if self.auto_pad == "SAME_UPPER" else total - total // 2
                f = total - b
            elif self.auto_pad == "VALID":
                b = f = 0
                o = (n - e) // s + 1
            else:
                b, f = self.pads[i], self.pads[i + rank]
                span = n + b + f - e
                if self.ceil_mode:
                    o = -(-span // s) + 1
                    if (o - 1) * s >= n + b:
                        o -= 1
                else:
                    o = span // s + 1
            out.append(max(o, 0))
            begin.append(b)
            end.append(f)
        return Geometry(tuple(out), tuple(begin), tuple(end))


@dataclass(frozen=True)
class Geometry:
    """Output spatial sizes and the begin/end pads that produce them."""

    out: tuple[int, ...]
    begin: tuple[int, ...]
    end: tuple[int, ...]


def window_attrs(
    node: KernelNode, rank: int | None, kernel: Sequence[int] | None = None
) -> Window | None:
    """Reads kernel_shape/strides/dilations/pads/auto_pad/ceil_mode.

    ``kernel`` overrides ``kernel_shape`` (conv weights give it). Returns None when the rank
    is not known yet (no kernel_shape, no weights): the caller builds the window at run time.
    """
    ks = node.attr("kernel_shape")
    if kernel is None and ks is not None:
        kernel = [int(v) for v in ks]
    if kernel is None:
        return None
    rank = len(kernel) if rank is None else rank
    strides = node.attr("strides") or [1] * rank
    dilations = node.attr("dilations") or [1] * rank
    pads = node.attr("pads") or [0] * (2 * rank)
    auto_pad = node.attr("auto_pad", "NOTSET") or "NOTSET"
    if isinstance(auto_pad, bytes):
        auto_pad = auto_pad.decode()
    return Window(
        kernel=tuple(int(v) for v in kernel),
        strides=tuple(int(v) for v in strides),
        dilations=tuple(int(v) for v in dilations),
        pads=tuple(int(v) for v in pads),
        auto_pad=str(auto_pad),
        ceil_mode=bool(int(node.attr("ceil_mode", 0))),
    )


def pad_input(
    x: Array, begin: Sequence[int], end: Sequence[int], value: float | int = 0
) -> Array:
    """Returns ``x`` padded on its spatial axes (axes 2..) with ``value``; ``x`` if no padding."""
    if not any(begin) and not any(end):
        return x
    shape = x.shape[:2] + tuple(n + b + f for n, b, f in zip(x.shape[2:], begin, end))
    if value == 0:
        padded = np.zeros(shape, dtype=x.dtype)
    else:
        padded = np.full(shape, value, dtype=x.dtype)
    inner = (slice(None), slice(None)) + tuple(
        slice(b, b + n) for n, b in zip(x.shape[2:], begin)
    )
    padded[inner] = x
    return padded


@dataclass(frozen=True)
class FlatTaps:
    """Kernel taps as contiguous runs of a flattened, phase-split, padded input.

    The input is padded (``begin`` in front, enough behind for every window) to sizes that
    are multiples of the strides, then split into ``prod(strides)`` phases
    ``xpad[..., a1::s1, a2::s2, ...]``, all of spatial shape ``grid``. Output ``o`` of tap
    ``k`` reads ``xpad[o*s + k*d]``, which is phase ``(k*d) % s`` at ``o + (k*d) // s``: in the
    flattened phase that is ``flat(o) + offset(k)``, so each tap is one contiguous slice
    ``[offset, offset + length)`` and the outputs sit at ``flat(o)`` of a ``grid``-shaped
    buffer. Every tap becomes a 1-D ufunc run over unit-stride data, whatever the strides.
    """

    begin: tuple[int, ...]
    strides: tuple[int, ...]
    grid: tuple[int, ...]
    out: tuple[int, ...]
    length: int
    """Flat span covering every output position."""
    taps: tuple[tuple[int, int], ...]
    """Per kernel tap (row-major): (phase index, flat offset)."""


def flat_taps(window: Window, geom: Geometry, spatial: Sequence[int]) -> FlatTaps:
    """Builds the tap layout for one input spatial shape."""
    rank = len(spatial)
    grid = []
    for i in range(rank):
        s, e = window.strides[i], (window.kernel[i] - 1) * window.dilations[i] + 1
        need = max(spatial[i] + geom.begin[i] + geom.end[i], (geom.out[i] - 1) * s + e)
        grid.append(-(-need // s))
    pitches = [1] * rank
    for i in range(rank - 2, -1, -1):
        pitches[i] = pitches[i + 1] * grid[i + 1]
    length = sum((o - 1) * p for o, p in zip(geom.out, pitches)) + 1 if all(geom.out) else 0
    taps = []
    for offs in itertools.product(*(range(k) for k in window.kernel)):
        phase = 0
        flat = 0
        for i, k in enumerate(offs):
            pos = k * window.dilations[i]
            phase = phase * window.strides[i] + pos % window.strides[i]
            flat += (pos // window.strides[i]) * pitches[i]
        taps.append((phase, flat))
    return FlatTaps(geom.begin, window.strides, tuple(grid), geom.out, length, tuple(taps))


def split_phases(x: Array, ft: FlatTaps, value: float | int = 0) -> list[Array]:
    """Pads ``x`` and returns its phases, each ``(N, C, prod(grid))`` and C-contiguous."""
    rank = x.ndim - 2
    full = tuple(g * s for g, s in zip(ft.grid, ft.strides))
    n, c = x.shape[:2]
    if full == x.shape[2:] and not any(ft.begin) and x.flags.c_contiguous:
        padded = x
    else:
        padded = np.zeros((n, c) + full, dtype=x.dtype) if value == 0 else np.full(
            (n, c) + full, value, dtype=x.dtype
        )
        inner = (slice(None), slice(None)) + tuple(
            slice(b, b + size) for b, size in zip(ft.begin, x.shape[2:])
        )
        padded[inner] = x
    if all(s == 1 for s in ft.strides):
        return [padded.reshape(n, c, -1)]
    phases = []
    for offs in itertools.product(*(range(s) for s in ft.strides)):
        phase = tuple(slice(a, None, s) for a, s in zip(offs, ft.strides))
        view = padded[(slice(None), slice(None)) + phase]
        phases.append(np.ascontiguousarray(view).reshape(n, c, -1))
    assert len(phases) == int(np.prod(ft.strides)) and rank == len(ft.strides)
    return phases


def flat_buffer(n: int, c: int, ft: FlatTaps, dtype: Any, value: float | int = 0) -> Array:
    """A ``(n, c, prod(grid))`` accumulator (``value``-filled)."""
    size = math.prod(ft.grid)
    if value == 0:
        return np.zeros((n, c, size), dtype=dtype)
    return np.full((n, c, size), value, dtype=dtype)


def crop_flat(acc: Array, ft: FlatTaps) -> Array:
    """The output positions of a flat accumulator, as an ``(n, c, *out)`` view."""
    grid = acc.reshape(acc.shape[:2] + ft.grid)
    return grid[(slice(None), slice(None)) + tuple(slice(0, o) for o in ft.out)]
