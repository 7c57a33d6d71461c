"""ConvTranspose (N-D, grouped, strided, dilated; pads, output_padding, output_shape, auto_pad).

Each input pixel scatters ``W[c, m, k] * X[n, c, i]`` to output position ``i * s + k * d - b``.
One batched BLAS product gives every tap's contribution ``cols[n, m, k, i]``; one strided,
cropped add per kernel tap places them. Sizes (``e = (k-1)d+1``):

* full length ``L = s (n-1) + output_padding + e``; with explicit pads ``out = L - b - f``;
* ``output_shape`` given (or SAME_* auto_pad, where it is ``n * s``): total padding ``L - out``
  splits with its odd unit at the beginning, except SAME_UPPER which puts it at the end.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from .._registry import Kernel, KernelNode
from ._common import Array, as_kernel, compute_dtype, const_input, int_attr, versions

__all__: list[str] = []

_Placement = tuple[tuple[slice, ...], tuple[slice, ...], int]


def _layout(
    node: KernelNode, spatial: tuple[int, ...], kernel: tuple[int, ...]
) -> tuple[tuple[int, ...], list[_Placement]]:
    """Returns output sizes and, per kernel tap, (output slices, input slices, tap index)."""
    rank = len(spatial)
    strides = [int(v) for v in (node.attr("strides") or [1] * rank)]
    dilations = [int(v) for v in (node.attr("dilations") or [1] * rank)]
    out_pad = [int(v) for v in (node.attr("output_padding") or [0] * rank)]
    pads = [int(v) for v in (node.attr("pads") or [0] * (2 * rank))]
    out_shape_attr = node.attr("output_shape")
    auto_pad = str(node.attr("auto_pad", "NOTSET") or "NOTSET")
    full = [
        strides[i] * (spatial[i] - 1) + out_pad[i] + (kernel[i] - 1) * dilations[i] + 1
        for i in range(rank)
    ]
    if out_shape_attr is not None or auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        if out_shape_attr is not None:
            target = [int(v) for v in out_shape_attr][-rank:]
        else:
            target = [spatial[i] * strides[i] for i in range(rank)]
        begin = []
        for i in range(rank):
            total = full[i] - target[i]
            begin.append(total // 2 if auto_pad == "SAME_UPPER" else total - total // 2)
        out = target
    elif auto_pad == "VALID":
        begin = [0] * rank
        out = full
    else:
        begin = pads[:rank]
        out = [full[i] - pads[i] - pads[i + rank] for i in range(rank)]
    per_dim: list[list[tuple[slice, slice, int]]] = []
    for i in range(rank):
        s, d, b, n, o = strides[i], dilations[i], begin[i], spatial[i], out[i]
        taps = []
        for k in range(kernel[i]):
            shift = k * d - b  # output position of input 0 for this tap
            lo = 0 if shift >= 0 else (-shift + s - 1) // s  # first i with i*s+shift >= 0
            hi = min(n - 1, (o - 1 - shift) // s)  # last i with i*s+shift <= o-1
            if lo > hi:
                taps.append((slice(0, 0), slice(0, 0), k))
                continue
            start = lo * s + shift
            taps.append((slice(start, start + (hi - lo) * s + 1, s), slice(lo, hi + 1), k))
        per_dim.append(taps)
    placements: list[_Placement] = []
    for combo in itertools.product(*per_dim):
        if any(t[1].stop == t[1].start for t in combo):
            continue
        flat = int(np.ravel_multi_index(tuple(t[2] for t in combo), kernel))
        placements.append((tuple(t[0] for t in combo), tuple(t[1] for t in combo), flat))
    return tuple(out), placements


@versions("ConvTranspose", 1, 11, 22)
def _conv_transpose(node: KernelNode) -> Kernel:
    group = int_attr(node, "group", 1)
    w_const = const_input(node, 1)
    b_const = const_input(node, 2)
    layouts: dict[tuple[tuple[int, ...], tuple[int, ...]], Any] = {}

    def arrange(w: Array, dtype: np.dtype[Any]) -> Array:
        """(C, Mg, *k) -> (G, Mg*K, Cg): the transposed per-group weight matrices."""
        c = w.shape[0]
        return np.ascontiguousarray(
            w.astype(dtype, copy=False).reshape(group, c // group, -1).transpose(0, 2, 1)
        )

    w_arranged = None if w_const is None else arrange(w_const, compute_dtype(w_const.dtype))

    def run(x: Array, w: Array, b: Array | None = None) -> tuple[Array]:
        dtype = x.dtype
        cdt = compute_dtype(dtype)
        xc = x.astype(cdt, copy=False)
        wm = w_arranged if w_arranged is not None else arrange(w, cdt)
        n, c = x.shape[:2]
        spatial = x.shape[2:]
        kernel = tuple(int(v) for v in (node.attr("kernel_shape") or w.shape[2:]))
        key = (spatial, kernel)
        layout = layouts.get(key)
        if layout is None:
            layout = _layout(node, spatial, kernel)
            layouts[key] = layout
        out, placements = layout
        mg = w.shape[1]
        ktaps = int(np.prod(kernel, dtype=np.int64))
        cols = np.matmul(wm, xc.reshape(n, group, c // group, -1))  # (n, G, Mg*K, pix)
        cols = cols.reshape((n, group * mg, ktaps) + spatial)
        y = np.zeros((n, group * mg) + out, dtype=cdt)
        lead = (slice(None), slice(None))
        for out_sl, in_sl, tap in placements:
            y[lead + out_sl] += cols[(slice(None), slice(None), tap) + in_sl]
        bias = b_const if b_const is not None else b
        if bias is not None:
            y += bias.astype(cdt, copy=False).reshape((-1,) + (1,) * len(out))
        return (y if y.dtype == dtype else y.astype(dtype),)

    return as_kernel(run, "gemm_col2im")
