"""Device names: ``CPU``, ``CPU.0``, ``AUTO:CPU,TEMPLATE``, ``AUTO:-TEMPLATE``, ``BATCH:CPU(4)``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import DeviceNameError

__all__ = ["DeviceName", "DeviceTarget", "parse_device_name"]

_SIMPLE = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:\.(?P<id>[0-9]+(?:\.[0-9]+)?))?$")
_TARGET = re.compile(
    r"^(?P<minus>-)?(?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[0-9]+(?:\.[0-9]+)?)?)"
    r"(?:\((?P<count>[0-9]+)\))?$"
)


@dataclass(frozen=True)
class DeviceTarget:
    """One entry of a virtual device's list: ``CPU``, ``CPU.1``, ``-GPU`` or ``CPU(4)``."""

    name: str
    count: int | None = None
    excluded: bool = False

    def __str__(self) -> str:
        sign = "-" if self.excluded else ""
        count = f"({self.count})" if self.count is not None else ""
        return f"{sign}{self.name}{count}"


@dataclass(frozen=True)
class DeviceName:
    """A parsed device name: the plugin to load, a device id, and virtual-device targets."""

    device: str
    device_id: str | None = None
    targets: tuple[DeviceTarget, ...] = ()
    virtual: bool = False

    def __str__(self) -> str:
        if self.virtual:
            return f"{self.device}:{','.join(str(t) for t in self.targets)}"
        return self.device if self.device_id is None else f"{self.device}.{self.device_id}"


def parse_device_name(text: str) -> DeviceName:
    """Parses a device name; raises DeviceNameError naming what is malformed."""
    if not isinstance(text, str) or not text.strip():
        raise DeviceNameError(f"device name must be a non-empty string, got {text!r}")
    text = text.strip()
    head, sep, tail = text.partition(":")
    if sep:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", head):
            raise DeviceNameError(f"malformed virtual device {head!r} in {text!r}")
        items = tail.split(",") if tail else []
        targets = []
        for raw in items:
            item = raw.strip()
            match = _TARGET.fullmatch(item)
            if not match:
                raise DeviceNameError(
                    f"malformed device {item!r} in {text!r}: expected NAME, NAME.ID, -NAME "
                    f"or NAME(N), e.g. 'AUTO:CPU,TEMPLATE' or 'BATCH:CPU(4)'"
                )
            count = match.group("count")
            targets.append(
                DeviceTarget(
                    match.group("name"),
                    int(count) if count is not None else None,
                    bool(match.group("minus")),
                )
            )
        if not targets and head not in {"AUTO", "MULTI"}:
            raise DeviceNameError(f"{head} needs at least one device after ':', got {text!r}")
        return DeviceName(head, None, tuple(targets), virtual=True)
    match = _SIMPLE.fullmatch(text)
    if not match:
        raise DeviceNameError(
            f"malformed device name {text!r}: expected NAME or NAME.ID (e.g. 'CPU', 'CPU.0'), "
            f"or a virtual device such as 'AUTO:CPU,TEMPLATE'"
        )
    return DeviceName(match.group("name"), match.group("id"))
