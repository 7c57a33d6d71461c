"""Fixtures shared by the CPU device's kernel tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from aioplug_cpu.kernels.math import _jit


@pytest.fixture(params=["jit", "numpy"])
def kernel_kind(request: pytest.FixtureRequest) -> Iterator[str]:
    """Runs a test with the compiled kernels (skipped without numba) and with numpy alone;
    yields the depthwise conv's exec type in that mode."""
    if request.param == "jit":
        if not _jit.available():
            pytest.skip("numba is not installed: only the numpy kernels exist")
        yield "depthwise_jit"
        return
    saved = _jit._kernels, _jit._tried
    _jit._kernels, _jit._tried = None, True
    try:
        yield "depthwise"
    finally:
        _jit._kernels, _jit._tried = saved
