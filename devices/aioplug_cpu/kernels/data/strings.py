"""String kernels on object arrays of ``str``: StringNormalizer, RegexFullMatch, StringConcat,
StringSplit."""

from __future__ import annotations

import re

import numpy as np

from .._registry import Kernel, KernelNode, kernel
from ._common import INT64, FnKernel

__all__: list[str] = []


@kernel("StringNormalizer", 10)
def string_normalizer(node: KernelNode) -> Kernel:
    """StringNormalizer: drops ``stopwords`` then changes case; [C] or [1, C] input."""
    action = str(node.attr("case_change_action", "NONE"))
    sensitive = bool(node.attr("is_case_sensitive", 0))
    stops = list(node.attr("stopwords", []) or [])
    stop_set = set(stops) if sensitive else {s.casefold() for s in stops}
    change = {"LOWER": str.lower, "UPPER": str.upper}.get(action)
    if change is None and action != "NONE":
        raise ValueError(f"StringNormalizer: unknown case_change_action {action!r}")

    def run(x: np.ndarray) -> tuple[np.ndarray]:
        words = [str(w) for w in x.reshape(-1).tolist()]
        if stop_set:
            words = [w for w in words if (w if sensitive else w.casefold()) not in stop_set]
        if change is not None:
            words = [change(w) for w in words]
        if not words:
            words = [""]
        out = np.array(words, dtype=object)
        return (out.reshape(1, -1) if x.ndim == 2 else out,)

    return FnKernel(run)


@kernel("RegexFullMatch", 20)
def regex_full_match(node: KernelNode) -> Kernel:
    """RegexFullMatch: bool tensor, true where the whole string matches ``pattern``."""
    pattern = re.compile(str(node.attr("pattern", "")))

    def run(x: np.ndarray) -> tuple[np.ndarray]:
        flat = [pattern.fullmatch(str(s)) is not None for s in x.reshape(-1).tolist()]
        return (np.array(flat, dtype=bool).reshape(x.shape),)

    return FnKernel(run)


@kernel("StringConcat", 20)
def string_concat(node: KernelNode) -> Kernel:
    """StringConcat: element-wise concatenation with numpy broadcasting."""

    def run(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray]:
        return (np.asarray(np.add(x.astype(object), y.astype(object)), dtype=object),)

    return FnKernel(run)


@kernel("StringSplit", 20)
def string_split(node: KernelNode) -> Kernel:
    """StringSplit: splits on ``delimiter`` (default: runs of whitespace), at most ``maxsplit``
    times; pads with "" to the longest split and returns the counts (int64)."""
    delim = node.attr("delimiter")
    sep = str(delim) if delim else None
    maxsplit = node.attr("maxsplit")
    limit = int(maxsplit) if maxsplit is not None else -1

    def run(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        parts = [str(s).split(sep, limit) for s in x.reshape(-1).tolist()]
        width = max((len(p) for p in parts), default=0)
        out = np.full((len(parts), width), "", dtype=object)
        for i, p in enumerate(parts):
            out[i, : len(p)] = p
        counts = np.array([len(p) for p in parts], dtype=INT64).reshape(x.shape)
        return out.reshape((*x.shape, width)), counts

    return FnKernel(run)
