"""HETERO: a virtual device that splits one model over several devices.

``HETERO:TEMPLATE,CPU`` runs each node on the first listed device whose ``query_model``
supports it, cuts the graph into acyclic subgraphs of one device each, compiles every subgraph
on its device through the Core, and runs them in order for each inference, handing the
tensors that cross a cut from one device's request to the next. It exports (and so is cached
whole): importing rebuilds the plan and imports each part on its device, compiling nothing.
Files, in reading order:

* ``plugin.py``          assigns nodes by priority (``query_model``) and compiles the parts
* ``split.py``           the split plan: stages, subgraphs, and each subgraph as an ONNX model
* ``compiled_model.py``  the plan (``subgraphs``) and the compiled parts
* ``infer_request.py``   runs the parts in order, async and sync
* ``export.py``          the export stream: the plan, the original model, each part's own blob

It imports only aioplug's public plugin API (``aioplug.plugin``).
"""

from __future__ import annotations

from .compiled_model import HeteroCompiledModel
from .infer_request import HeteroSyncInferRequest
from .plugin import HeteroPlugin
from .split import Subgraph

__all__ = [
    "HeteroCompiledModel",
    "HeteroPlugin",
    "HeteroSyncInferRequest",
    "Subgraph",
    "create_plugin_engine",
]


def create_plugin_engine() -> HeteroPlugin:
    """Creates the HETERO plugin (the ``aioplug.devices`` entry point)."""
    return HeteroPlugin()
