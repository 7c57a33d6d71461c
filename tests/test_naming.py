from __future__ import annotations

import pytest

from aioplug import DeviceNameError, DeviceTarget, parse_device_name


@pytest.mark.parametrize(
    ("text", "device", "device_id"),
    [("CPU", "CPU", None), ("CPU.0", "CPU", "0"), ("TEMPLATE.1", "TEMPLATE", "1"), ("GPU.0.1", "GPU", "0.1")],
)
def test_simple_names_split_into_device_and_id(text: str, device: str, device_id: str | None) -> None:
    name = parse_device_name(text)
    assert (name.device, name.device_id, name.virtual) == (device, device_id, False)
    assert str(name) == text


def test_virtual_device_lists_keep_order_counts_and_exclusions() -> None:
    name = parse_device_name("AUTO:CPU,-TEMPLATE,GPU.1(4)")
    assert name.virtual and name.device == "AUTO"
    assert name.targets == (
        DeviceTarget("CPU"),
        DeviceTarget("TEMPLATE", excluded=True),
        DeviceTarget("GPU.1", count=4),
    )
    assert str(name) == "AUTO:CPU,-TEMPLATE,GPU.1(4)"


def test_batch_name_carries_the_batch_size() -> None:
    name = parse_device_name("BATCH:CPU(8)")
    assert name.targets == (DeviceTarget("CPU", count=8),)


@pytest.mark.parametrize(
    "text", ["", "  ", "CPU.", "CPU.l0", ".0", "CPU:", "BATCH:CPU(x)", "HETERO:CPU,,GPU", "A B", "CPU(4)", 5]
)
def test_malformed_names_raise_device_name_error(text: object) -> None:
    with pytest.raises(DeviceNameError):
        parse_device_name(text)  # type: ignore[arg-type]
