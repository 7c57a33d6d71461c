"""The BATCH device's properties: the virtual-device set plus ``AUTO_BATCH_TIMEOUT``."""

from __future__ import annotations

from dataclasses import replace

from aioplug.plugin import Mutability, PropertySpec, well_known

DEVICE_NAME = "BATCH"
FULL_DEVICE_NAME = "aioplug BATCH virtual device (automatic batching)"
VERSION = "0.1.0"
LABEL = "batch"
"""Name of the profiling record of the batch a request ran in (and prefix of its parts')."""


def plugin_properties(base: list[PropertySpec]) -> list[PropertySpec]:
    """The plugin's properties: ``base`` (the virtual device's) and ``AUTO_BATCH_TIMEOUT``."""
    return [*base, *well_known("AUTO_BATCH_TIMEOUT")]


def compiled_model_properties(base: list[PropertySpec]) -> list[PropertySpec]:
    """The compiled model's: ``base`` and ``AUTO_BATCH_TIMEOUT``, fixed at compile time."""
    return [*base, *(replace(s, mutability=Mutability.RO) for s in well_known("AUTO_BATCH_TIMEOUT"))]
