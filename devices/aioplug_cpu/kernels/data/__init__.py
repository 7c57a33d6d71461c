"""The data family: shape and data movement, indexing, resizing, casts and quantisation,
sequences and optionals, recurrent layers, and the reference fallback for the long tail.

Importing this package registers every numpy kernel of the family. :func:`finalize` must be
called once both families are imported (``kernels/__init__.py`` does it last): it registers
the onnx.reference fallback for every standard op that no numpy kernel implements.
"""

from __future__ import annotations

from . import (  # noqa: F401  (each module registers its kernels on import)
    cast,
    detection,
    gather,
    generate,
    image,
    joinsplit,
    quant,
    random_ops,
    resize,
    rnn,
    scatter,
    select,
    sequence,
    shape,
    slicing,
    strings,
)
from .fallback import register_reference_fallbacks

__all__ = ["finalize"]


def finalize() -> list[str]:
    """Registers the reference fallbacks for ops still missing; returns them (idempotent)."""
    return register_reference_fallbacks()
