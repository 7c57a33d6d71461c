"""Every async test runs under asyncio and under asyncio with uvloop (anyio's pytest plugin)."""

from __future__ import annotations

import sys

import pytest

_BACKENDS = [pytest.param(("asyncio", {}), id="asyncio")]
if sys.platform != "win32":
    _BACKENDS.append(pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"))


@pytest.fixture(params=_BACKENDS)
def anyio_backend(request: pytest.FixtureRequest) -> object:
    return request.param
