"""Fixtures of the ``aioplug serve`` tests: a real server on a loopback port, shared per module.

Without the serve extra (starlette, uvicorn) and httpx these tests are not collected, so
the rest of the suite still runs; tests that need tritonclient skip on their own.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from typing import Any

import pytest

_NEEDED = ("starlette", "uvicorn", "httpx")
_MISSING = [name for name in _NEEDED if importlib.util.find_spec(name) is None]

if _MISSING:
    collect_ignore_glob = ["test_*.py"]
    print(f"tests/serve skipped: {', '.join(_MISSING)} not installed (pip install -e '.[dev]')")
else:

    @pytest.fixture(scope="module")
    def server_thread() -> Iterator[Any]:
        """``aioplug serve`` of :func:`serving_specs` on a free loopback port, in a background thread."""
        from aioplug.serve import ServerThread
        from serve_support import TEST_SETTINGS, serving_specs

        with ServerThread(serving_specs(), TEST_SETTINGS) as thread:
            yield thread
