"""The CPU compiler: model IR -> graph passes -> an execution plan of prepared kernels."""

from __future__ import annotations

from .graph import Graph, GraphNode, Value
from .passes import PassManager, default_passes
from .plan import ExecutionPlan, Step, build_plan
from . import control_flow as _control_flow  # noqa: F401,E402  (registers If, Loop, Scan)
from . import fused_kernels as _fused_kernels  # noqa: F401,E402  (registers the fused ops)
from . import flex_attention as _flex_attention  # noqa: F401,E402  (registers FlexAttention)

__all__ = [
    "ExecutionPlan",
    "Graph",
    "GraphNode",
    "PassManager",
    "Step",
    "Value",
    "build_plan",
    "default_passes",
]
