"""The TEMPLATE device's properties: the standard set, with TEMPLATE's defaults."""

from __future__ import annotations

from aioplug.plugin import PropertySpec, well_known

DEVICE_NAME = "TEMPLATE"
FULL_DEVICE_NAME = "aioplug TEMPLATE device (onnx reference kernels)"
VERSION = "0.1.0"


def plugin_properties() -> list[PropertySpec]:
    """Properties of the plugin."""
    return well_known(
        "FULL_DEVICE_NAME", "AVAILABLE_DEVICES", "OPTIMIZATION_CAPABILITIES",
        "RANGE_FOR_ASYNC_INFER_REQUESTS", "RANGE_FOR_STREAMS", "EXECUTION_DEVICES",
        "DEVICE_ARCHITECTURE", "DEVICE_TYPE", "CACHING_PROPERTIES", "PERFORMANCE_HINT",
        "PERFORMANCE_HINT_NUM_REQUESTS", "EXECUTION_MODE_HINT", "INFERENCE_PRECISION_HINT",
        "NUM_STREAMS", "INFERENCE_NUM_THREADS", "PERF_COUNT", "DEVICE_ID", "VARIABLE_STATES",
        "MAX_QUEUED_REQUESTS", "COMPUTE_EXECUTOR", "TEST_UNSUPPORTED_OPS",
    )
