"""Typed, validated properties with string keys, as in OpenVINO.

A :class:`PropertySpec` names one key, its mutability, how to read a value (strings round-trip:
``"YES"`` / ``"NO"`` for booleans, ``"4"`` for integers) and which values are allowed. A
:class:`PropertySet` holds the specs of one plugin or compiled model and their current values;
its ``SUPPORTED_PROPERTIES`` is the source of truth, and every unknown key or bad value raises
:class:`~aioplug.errors.PropertyError` naming what is supported.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import PropertyError

__all__ = [
    "Mutability",
    "PropertySet",
    "PropertySpec",
    "PerformanceMode",
    "as_bool",
    "as_int",
    "as_state_map",
    "well_known",
]


class Mutability(str, enum.Enum):
    """Whether a property can be written (RW) or only read (RO)."""

    RO = "RO"
    RW = "RW"


class PerformanceMode(str, enum.Enum):
    """Values of ``PERFORMANCE_HINT``."""

    LATENCY = "LATENCY"
    THROUGHPUT = "THROUGHPUT"
    CUMULATIVE_THROUGHPUT = "CUMULATIVE_THROUGHPUT"


def as_bool(value: Any) -> bool:
    """Reads a boolean from ``True``/``False`` or the strings YES/NO/TRUE/FALSE/1/0."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().upper() in {"YES", "TRUE", "1", "ON"}:
        return True
    if isinstance(value, str) and value.strip().upper() in {"NO", "FALSE", "0", "OFF"}:
        return False
    raise ValueError(f"expected a boolean (True/False or 'YES'/'NO'), got {value!r}")


def as_int(value: Any) -> int:
    """Reads an integer from an int or a decimal string (not from a bool or a float)."""
    if isinstance(value, bool):
        raise ValueError(f"expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        return int(value.strip())
    raise ValueError(f"expected an integer, got {value!r}")


def as_state_map(value: Any) -> dict[str, str]:
    """Reads ``{state input: state output}`` from a mapping or ``"h_in:h_out,c_in:c_out"``."""
    if isinstance(value, Mapping):
        pairs = list(value.items())
    elif isinstance(value, str):
        pairs = []
        for item in filter(None, (p.strip() for p in value.split(","))):
            src, sep, dst = item.partition(":")
            if not sep or not src.strip() or not dst.strip():
                raise ValueError(f"expected 'input:output' pairs, got {item!r}")
            pairs.append((src.strip(), dst.strip()))
    else:
        raise ValueError(f"expected a mapping or 'in:out,...' string, got {value!r}")
    out: dict[str, str] = {}
    for src, dst in pairs:
        if not isinstance(src, str) or not isinstance(dst, str):
            raise ValueError(f"state names must be strings, got {src!r}: {dst!r}")
        out[src] = dst
    return out


@dataclass(frozen=True)
class PropertySpec:
    """One property key: its mutability, reader, allowed values and default."""

    name: str
    mutability: Mutability
    default: Any = None
    parse: Callable[[Any], Any] | None = None
    choices: tuple[Any, ...] | None = None
    minimum: int | None = None
    doc: str = ""

    @property
    def mutable(self) -> bool:
        """True when the property can be written."""
        return self.mutability is Mutability.RW

    def validate(self, value: Any) -> Any:
        """Returns ``value`` read into its type; raises PropertyError when it is not allowed."""
        try:
            parsed = self.parse(value) if self.parse is not None else value
        except (ValueError, TypeError) as exc:
            raise PropertyError(f"bad value for property {self.name}: {exc}") from exc
        if self.choices is not None:
            if parsed not in self.choices:
                allowed = ", ".join(str(c) for c in self.choices)
                raise PropertyError(
                    f"bad value {value!r} for property {self.name}; Supported values: {allowed}"
                )
        if self.minimum is not None and isinstance(parsed, int) and parsed < self.minimum:
            raise PropertyError(
                f"bad value {value!r} for property {self.name}: must be >= {self.minimum}"
            )
        return parsed


def _hint(value: Any) -> str:
    return str(value.value if isinstance(value, PerformanceMode) else value).upper()


def _streams(value: Any) -> int:
    if isinstance(value, str) and value.strip().upper() in {"AUTO", "NUMA"}:
        return -1 if value.strip().upper() == "AUTO" else -2
    n = as_int(value)
    if n < -2:
        raise ValueError("expected an integer >= 0, 'AUTO' (-1) or 'NUMA' (-2)")
    return n


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {value!r}")
    return value


def _op_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v for v in (p.strip() for p in value.split(",")) if v]
    if not isinstance(value, (list, tuple, set, frozenset)) or not all(
        isinstance(v, str) and v for v in value
    ):
        raise ValueError(f"expected op types as a list or 'Relu,Add' string, got {value!r}")
    return tuple(sorted(set(value)))


def _path_or_empty(value: Any) -> str:
    import os

    if isinstance(value, os.PathLike):
        return str(os.fspath(value))
    return _str(value)


RW, RO = Mutability.RW, Mutability.RO

_WELL_KNOWN: dict[str, PropertySpec] = {
    spec.name: spec
    for spec in (
        PropertySpec("SUPPORTED_PROPERTIES", RO, doc="Every supported key with its mutability."),
        PropertySpec("FULL_DEVICE_NAME", RO, doc="A readable name of the device."),
        PropertySpec("AVAILABLE_DEVICES", RO, doc="Device ids of this plugin."),
        PropertySpec("OPTIMIZATION_CAPABILITIES", RO, doc="FP32, FP16, INT8, EXPORT_IMPORT, ..."),
        PropertySpec("RANGE_FOR_ASYNC_INFER_REQUESTS", RO, doc="(min, max, step)."),
        PropertySpec("RANGE_FOR_STREAMS", RO, doc="(min, max)."),
        PropertySpec("EXECUTION_DEVICES", RO, doc="Devices that run the compiled model."),
        PropertySpec("DEVICE_ARCHITECTURE", RO, doc="The device's architecture."),
        PropertySpec("DEVICE_TYPE", RO, doc="integrated or discrete."),
        PropertySpec("CACHING_PROPERTIES", RO, doc="Keys whose values enter the cache key."),
        PropertySpec(
            "PERFORMANCE_HINT",
            RW,
            "LATENCY",
            _hint,
            tuple(m.value for m in PerformanceMode),
            doc="Optimise for latency or throughput.",
        ),
        PropertySpec(
            "PERFORMANCE_HINT_NUM_REQUESTS", RW, 0, as_int, minimum=0,
            doc="Requests the application keeps in flight (0: no limit).",
        ),
        PropertySpec(
            "EXECUTION_MODE_HINT", RW, "PERFORMANCE", lambda v: _str(v).upper(),
            ("PERFORMANCE", "ACCURACY"), doc="Allow precision trade-offs or not.",
        ),
        PropertySpec(
            "INFERENCE_PRECISION_HINT", RW, "f32", lambda v: _str(v).lower(), ("f32",),
            doc="Precision of inference.",
        ),
        PropertySpec(
            "NUM_STREAMS", RW, -1, _streams,
            doc="Requests computed at once; AUTO (-1) derives it from the hint.",
        ),
        PropertySpec(
            "INFERENCE_NUM_THREADS", RW, 0, as_int, minimum=0,
            doc="Threads for one inference (0: the device decides).",
        ),
        PropertySpec("PERF_COUNT", RW, False, as_bool, doc="Collect per-node profiling."),
        PropertySpec("CACHE_DIR", RW, "", _path_or_empty, doc="Model cache folder; empty: off."),
        PropertySpec("DEVICE_ID", RW, "0", lambda v: str(as_int(v)), doc="Device instance."),
        PropertySpec("OPTIMAL_NUMBER_OF_INFER_REQUESTS", RO, doc="Requests to keep in flight."),
        PropertySpec("NETWORK_NAME", RO, doc="The model's name."),
        PropertySpec("LOADED_FROM_CACHE", RO, False, doc="True when imported from the cache."),
        PropertySpec(
            "VARIABLE_STATES", RW, {}, as_state_map,
            doc="{state input: state output}: the request keeps that state between infers.",
        ),
        PropertySpec(
            "MAX_QUEUED_REQUESTS", RW, 4096, as_int, minimum=0,
            doc="Callers that may wait for a free request before QueueFull.",
        ),
        PropertySpec(
            "MULTI_DEVICE_PRIORITIES", RW, "", lambda v: _str(v).replace(" ", ""),
            doc="The devices a virtual device drives, in priority order: 'CPU,TEMPLATE'.",
        ),
        PropertySpec(
            "AUTO_BATCH_TIMEOUT", RW, 10, as_int, minimum=0,
            doc="BATCH: milliseconds a partial batch waits for more requests.",
        ),
        PropertySpec(
            "ENABLE_RUNTIME_FALLBACK", RW, True, as_bool,
            doc="AUTO: re-run a request that fails with a device error on the next device.",
        ),
        PropertySpec(
            "TEST_UNSUPPORTED_OPS", RW, (), _op_list,
            doc="For tests of virtual devices: op types this device pretends it cannot run.",
        ),
        PropertySpec(
            "COMPUTE_EXECUTOR", RW, "AUTO", lambda v: _str(v).upper(),
            ("AUTO", "LOOP", "STREAMS"),
            doc="Where compute runs: stream threads, or the event loop for tiny plans.",
        ),
    )
}


def well_known(*names: str, **overrides: Any) -> list[PropertySpec]:
    """Returns the standard specs for ``names``; ``overrides`` maps a name to a default."""
    specs = []
    for name in names:
        spec = _WELL_KNOWN[name]
        if name in overrides:
            spec = PropertySpec(
                spec.name, spec.mutability, overrides[name], spec.parse, spec.choices,
                spec.minimum, spec.doc,
            )
        specs.append(spec)
    return specs


class PropertySet:
    """The specs and current values of one plugin or compiled model.

    RO values come from ``getters`` (called on each read) or fixed ``values``; RW values are
    validated on every write. ``set`` validates all keys before it changes any.
    """

    def __init__(
        self,
        owner: str,
        specs: Iterable[PropertySpec],
        getters: Mapping[str, Callable[[], Any]] | None = None,
    ) -> None:
        self._owner = owner
        self._specs = {spec.name: spec for spec in specs}
        self._specs.setdefault(
            "SUPPORTED_PROPERTIES", _WELL_KNOWN["SUPPORTED_PROPERTIES"]
        )
        self._getters = dict(getters or {})
        self._values = {
            name: spec.default for name, spec in self._specs.items() if spec.default is not None
        }

    @property
    def specs(self) -> Mapping[str, PropertySpec]:
        """The specs by key."""
        return self._specs

    def supported(self) -> dict[str, Mutability]:
        """Returns ``{key: mutability}`` for every supported key."""
        return {name: spec.mutability for name, spec in self._specs.items()}

    def spec(self, name: str) -> PropertySpec:
        """Returns the spec of ``name``; raises PropertyError for an unknown key."""
        try:
            return self._specs[name]
        except KeyError:
            supported = ", ".join(sorted(self._specs))
            raise PropertyError(
                f"{self._owner} does not support property {name!r}; supported: {supported}"
            ) from None

    def get(self, name: str) -> Any:
        """Returns the value of ``name``."""
        self.spec(name)
        if name == "SUPPORTED_PROPERTIES":
            return self.supported()
        if name in self._getters:
            return self._getters[name]()
        if name not in self._values:
            raise PropertyError(f"{self._owner} has no value for property {name!r}")
        return self._values[name]

    def validate(self, values: Mapping[str, Any], *, allow_ro: bool = False) -> dict[str, Any]:
        """Returns ``values`` read into their types, checking every key first."""
        checked = {}
        for name, value in values.items():
            spec = self.spec(name)
            if not spec.mutable and not allow_ro:
                raise PropertyError(f"property {name} of {self._owner} is read-only")
            checked[name] = spec.validate(value)
        return checked

    def set(self, values: Mapping[str, Any], *, allow_ro: bool = False) -> None:
        """Validates every value, then applies them all."""
        self._values.update(self.validate(values, allow_ro=allow_ro))

    def values(self) -> dict[str, Any]:
        """Returns a copy of the stored values (RW values and fixed RO values)."""
        return dict(self._values)
