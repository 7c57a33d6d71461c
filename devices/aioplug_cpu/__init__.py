"""CPU: aioplug's main device. ONNX graphs compiled into numpy execution plans.

Compile = model IR -> graph passes (constant folding, dead-node removal, fusions) -> an
execution plan of prepared kernels over numbered value slots. Files, as in every device:

* ``config.py``               properties, streams and threads
* ``plugin.py``               describes the device; compiles, imports, answers query_model
* ``compiled_model.py``       the plan plus its requests; exports the transformed graph
* ``sync_infer_request.py``   runs the plan, with profiling and cancellation between nodes
* ``async_infer_request.py``  the pipeline of stages
* ``remote.py``               the remote context (host memory the device uses in place)
* ``compiler/``               graph, passes, plan
* ``kernels/``                the numpy kernels, by op family

It imports only aioplug's public plugin API.
"""

from __future__ import annotations

from .plugin import CpuPlugin

__all__ = ["CpuPlugin", "create_plugin_engine"]


def create_plugin_engine() -> CpuPlugin:
    """Creates the CPU plugin (the ``aioplug.devices`` entry point)."""
    return CpuPlugin()
