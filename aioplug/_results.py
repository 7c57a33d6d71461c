"""Inference results, by output name and by index."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["InferResults"]


class InferResults(Mapping[str, Any]):
    """The outputs of one inference: ``out["y"]``, ``out[0]``, ``dict(out)``."""

    __slots__ = ("_names", "_values", "_index")

    def __init__(
        self, names: Sequence[str], values: Sequence[Any], index: Mapping[str, int] | None = None
    ) -> None:
        self._names = tuple(names)
        self._values = tuple(values)
        self._index = index if index is not None else {n: i for i, n in enumerate(self._names)}

    def __getitem__(self, key: str | int) -> Any:
        if isinstance(key, int):
            return self._values[key]
        try:
            return self._values[self._index[key]]
        except KeyError:
            raise KeyError(f"no output {key!r}; outputs are: {', '.join(self._names)}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def to_tuple(self) -> tuple[Any, ...]:
        """The outputs in order."""
        return self._values

    def __repr__(self) -> str:
        parts = []
        for name, value in zip(self._names, self._values):
            if isinstance(value, np.ndarray):
                parts.append(f"{name}: {value.dtype.name}{list(value.shape)}")
            else:
                parts.append(f"{name}: {type(value).__name__}")
        return "InferResults(" + ", ".join(parts) + ")"
