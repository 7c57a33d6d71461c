"""BATCH: automatic batching, OpenVINO's auto-batching done the asyncio way.

``BATCH:CPU(8)`` gathers concurrent requests to one compiled model into batches of up to 8,
runs each batch as one request on CPU, and hands every caller its slice of the outputs. A
partial batch starts after ``AUTO_BATCH_TIMEOUT`` milliseconds (default 10). The model must
have a batch axis: axis 0 of every input and output, of size 1 or symbolic. Files, in
reading order:

* ``config.py``               the device's properties
* ``plugin.py``               parses ``BATCH:DEVICE(N)``, checks the model, compiles on the device
* ``batch_axis.py``           which models can be batched; the symbolic-batch copy compiled
* ``compiled_model.py``       the compiled model: the device's model plus the batcher
* ``batcher.py``              gathers requests into batches, runs them, splits the outputs
* ``sync_infer_request.py``   joins a batch (async path) or runs the device alone (sync path)

It imports only aioplug's public plugin API (``aioplug.plugin``).
"""

from __future__ import annotations

from .batcher import BatchStatistics
from .compiled_model import BatchCompiledModel
from .plugin import BatchPlugin

__all__ = ["BatchCompiledModel", "BatchPlugin", "BatchStatistics", "create_plugin_engine"]


def create_plugin_engine() -> BatchPlugin:
    """Creates the BATCH plugin (the ``aioplug.devices`` entry point)."""
    return BatchPlugin()
