"""Test helpers for aioplug backends: conformance suites that any device can run.

Submodules are imported on demand (``aioplug.testing.node_suite`` pulls in onnx's
test-case generators), so importing this package stays cheap.
"""

from __future__ import annotations
