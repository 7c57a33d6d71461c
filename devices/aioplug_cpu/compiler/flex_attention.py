"""FlexAttention (``ai.onnx.preview``): attention whose scores and probabilities pass through
optional subgraphs, compiled into plans of their own like the bodies of control flow.

``Y = prob_mod(softmax(score_mod(scale * Q @ K^T))) @ V`` over rank-4 ``(batch, heads, seq,
head_size)`` tensors. With grouped-query attention (fewer K/V heads than Q heads), query head
``h`` uses K/V head ``h // (Hq / Hkv)``: Q is viewed as ``(B, Hkv, group, L, E)`` so each K/V
head is broadcast over its group without being copied. Scores, softmax and the product with V
run in ``softmax_precision`` (float32 unless the inputs are float64, or the attribute says
otherwise); the output comes back in V's type.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import helper

from ..kernels import KernelNode, kernel
from .control_flow import compile_subgraph
from .plan import ExecutionPlan

__all__ = ["FlexAttentionKernel"]

PREVIEW_DOMAIN = "ai.onnx.preview"


def _precision(attribute: int | None, dtype: np.dtype[Any]) -> np.dtype[Any]:
    if attribute is not None:
        return np.dtype(helper.tensor_dtype_to_np_dtype(int(attribute)))
    return np.dtype(np.float64) if dtype == np.float64 else np.dtype(np.float32)


@kernel("FlexAttention", 1, PREVIEW_DOMAIN)
class FlexAttentionKernel:
    """Scaled dot-product attention with score and probability modifier subgraphs."""

    exec_type = "flex_attention"

    def __init__(self, node: KernelNode) -> None:
        scale = node.attr("scale")
        self._scale = None if scale is None else float(scale)
        self._precision = node.attr("softmax_precision")
        opsets = dict(node.extra.get("opsets") or {})
        captured = tuple(node.extra.get("captured", ()))
        self._mods: dict[str, ExecutionPlan | None] = {}
        for name in ("score_mod", "prob_mod"):
            graph: onnx.GraphProto | None = node.attr(name)
            self._mods[name] = (
                None if graph is None else compile_subgraph(graph, opsets, captured, dict(node.extra))
            )

    def _modify(self, name: str, value: np.ndarray, captured: tuple[Any, ...]) -> np.ndarray:
        plan = self._mods[name]
        if plan is None:
            return value
        (out,) = plan.run([value, *captured])
        return np.asarray(out, dtype=value.dtype)

    def __call__(self, q: Any, k: Any, v: Any, *captured: Any) -> tuple[np.ndarray]:
        if q.ndim != 4 or k.ndim != 4 or v.ndim != 4:
            raise ValueError(
                f"FlexAttention needs rank-4 Q, K, V; got {q.shape}, {k.shape}, {v.shape}"
            )
        batch, q_heads, q_len, head = q.shape
        kv_heads, kv_len = k.shape[1], k.shape[2]
        if v.shape[1] != kv_heads or v.shape[2] != kv_len or k.shape[3] != head:
            raise ValueError(
                f"FlexAttention: K {k.shape} and V {v.shape} must agree on heads and sequence, "
                f"and K with Q {q.shape} on head size"
            )
        if q_heads % kv_heads:
            raise ValueError(
                f"FlexAttention: {q_heads} query heads are not a multiple of {kv_heads} K/V heads"
            )
        group = q_heads // kv_heads
        dtype = _precision(self._precision, q.dtype)
        scale = self._scale if self._scale is not None else 1.0 / float(np.sqrt(head))
        qg = q.astype(dtype, copy=False).reshape(batch, kv_heads, group, q_len, head)
        kt = np.swapaxes(k.astype(dtype, copy=False), -1, -2)[:, :, None]  # (B, Hkv, 1, E, S)
        scores = np.matmul(qg, kt)  # (B, Hkv, group, L, S)
        scores *= dtype.type(scale)
        scores = self._modify("score_mod", scores.reshape(batch, q_heads, q_len, kv_len), captured)
        scores = scores - scores.max(axis=-1, keepdims=True)
        probs = np.exp(scores, out=scores)
        probs /= probs.sum(axis=-1, keepdims=True)
        probs = self._modify("prob_mod", probs, captured)
        pg = probs.reshape(batch, kv_heads, group, q_len, kv_len)
        y = np.matmul(pg, v.astype(dtype, copy=False)[:, :, None])  # (B, Hkv, group, L, Ev)
        return (y.reshape(batch, q_heads, q_len, v.shape[3]).astype(v.dtype, copy=False),)
