"""The shipped conformance suite (aioplug.testing.conformance), run for every registered device.

Hardware devices come from the ``aioplug.devices`` entry points, so a device added there is
checked automatically. Virtual devices run it in the configurations users name them in:
``AUTO`` alone, ``MULTI:CPU,TEMPLATE``, ``HETERO:TEMPLATE,CPU`` and ``BATCH:CPU(4)``. Every
async check runs under asyncio and asyncio+uvloop (see conftest.py).
"""

from __future__ import annotations

from typing import Any

import pytest

import aioplug
from aioplug.plugin import VirtualPlugin
from aioplug.testing.conformance import *  # noqa: F401,F403

VIRTUAL_CONFIGURATIONS = {
    "AUTO": "AUTO",
    "MULTI": "MULTI:CPU,TEMPLATE",
    "HETERO": "HETERO:TEMPLATE,CPU",
    "BATCH": "BATCH:CPU(4)",
}


def _devices() -> list[str]:
    core = aioplug.Core()
    devices = []
    for name in core.registered_devices:
        try:
            virtual = isinstance(core.get_plugin(name), VirtualPlugin)
        except aioplug.AioplugError:  # a plugin that fails to load fails its checks, visibly
            virtual = name in VIRTUAL_CONFIGURATIONS
        devices.append(VIRTUAL_CONFIGURATIONS.get(name, name) if virtual else name)
    return devices


DEVICE_PROPERTIES = {
    # TEMPLATE refuses ops the suite's models use, so HETERO really cuts them into parts
    "HETERO:TEMPLATE,CPU": {"TEMPLATE": {"TEST_UNSUPPORTED_OPS": ["Relu", "Mul", "Cast"]}},
}


@pytest.fixture(params=_devices())
def conformance_device(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def conformance_properties(conformance_device: str) -> dict[str, dict[str, Any]]:
    return DEVICE_PROPERTIES.get(conformance_device, {})
