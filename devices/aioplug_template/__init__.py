"""TEMPLATE: the smallest complete aioplug device, to read top to bottom and to copy.

It runs ONNX graphs node by node with onnx's reference op implementations as kernels,
checks for cancellation between nodes, reports per-node profiling, keeps variable state,
exports and imports compiled models, and has a remote context whose tensors live in memory
only the device reaches. Files, in reading order:

* ``config.py``               the device's properties
* ``plugin.py``               describes the device; compiles, imports, answers query_model
* ``compiled_model.py``       the compiled model: an executable graph plus its requests
* ``sync_infer_request.py``   runs one inference, node by node
* ``async_infer_request.py``  the pipeline of stages the asynchronous request awaits
* ``remote.py``               the remote context and its device-memory tensors

It imports only aioplug's public plugin API (``aioplug.plugin``).
"""

from __future__ import annotations

from .plugin import TemplatePlugin

__all__ = ["TemplatePlugin", "create_plugin_engine"]


def create_plugin_engine() -> TemplatePlugin:
    """Creates the TEMPLATE plugin (the ``aioplug.devices`` entry point)."""
    return TemplatePlugin()
