"""The shipped conformance suite (aioplug.testing.conformance), run for every registered device.

Devices come from the ``aioplug.devices`` entry points, so a device added there is checked
automatically; every async check runs under asyncio and asyncio+uvloop (see conftest.py).
"""

from __future__ import annotations

import pytest

import aioplug
from aioplug.testing.conformance import *  # noqa: F401,F403

DEVICES = aioplug.Core().registered_devices


@pytest.fixture(params=DEVICES)
def conformance_device(request: pytest.FixtureRequest) -> str:
    return str(request.param)
