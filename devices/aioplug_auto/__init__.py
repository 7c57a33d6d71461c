"""AUTO and MULTI: virtual devices that choose among, or spread over, the hardware devices.

* ``AUTO`` (``AUTO``, ``AUTO:CPU,TEMPLATE``, ``AUTO:-TEMPLATE``) compiles the model on the best
  candidate that can run all of it (``selection.py``); a request that fails there with a device
  error is re-run on the next candidate. With ``PERFORMANCE_HINT=CUMULATIVE_THROUGHPUT`` it
  behaves as MULTI over every capable candidate.
* ``MULTI`` (``MULTI:CPU,TEMPLATE``) compiles the model on every listed device; each request
  goes to whichever device frees a request first (``workers.py``).

AUTO exports (and so is cached whole): importing lands on the device it chose, with its fallback
candidates; MULTI, like OpenVINO's, does not export.

Files, in reading order: ``plugin.py``, ``selection.py``, ``compiled_model.py``,
``infer_request.py``, ``workers.py``, ``export.py``. Only aioplug's public plugin API is imported.
"""

from __future__ import annotations

from .plugin import AutoPlugin, MultiPlugin

__all__ = ["AutoPlugin", "MultiPlugin", "create_multi_plugin_engine", "create_plugin_engine"]


def create_plugin_engine() -> AutoPlugin:
    """Creates the AUTO plugin (the ``aioplug.devices`` entry point ``AUTO``)."""
    return AutoPlugin()


def create_multi_plugin_engine() -> MultiPlugin:
    """Creates the MULTI plugin (the ``aioplug.devices`` entry point ``MULTI``)."""
    return MultiPlugin()
