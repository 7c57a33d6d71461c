from __future__ import annotations

import pytest

from aioplug import Mutability, PropertyError
from aioplug.properties import PropertySet, as_bool, as_int, as_state_map, well_known


@pytest.mark.parametrize(("raw", "value"), [(True, True), ("YES", True), ("no", False), ("false", False), ("1", True)])
def test_booleans_round_trip_through_strings(raw: object, value: bool) -> None:
    assert as_bool(raw) is value


@pytest.mark.parametrize("raw", ["maybe", 2.0, None, 3])
def test_non_booleans_are_rejected(raw: object) -> None:
    with pytest.raises(ValueError):
        as_bool(raw)


def test_integers_accept_decimal_strings_but_not_bools() -> None:
    assert as_int("12") == 12 and as_int(-3) == -3
    for bad in (True, 1.5, "1.5", "x"):
        with pytest.raises(ValueError):
            as_int(bad)


def test_state_map_reads_mapping_and_string_forms() -> None:
    assert as_state_map({"h_in": "h_out"}) == {"h_in": "h_out"}
    assert as_state_map("h_in:h_out, c_in:c_out") == {"h_in": "h_out", "c_in": "c_out"}
    with pytest.raises(ValueError):
        as_state_map("h_in")


def make_set() -> PropertySet:
    return PropertySet(
        "device X",
        well_known("FULL_DEVICE_NAME", "PERFORMANCE_HINT", "PERF_COUNT", "NUM_STREAMS"),
        getters={"FULL_DEVICE_NAME": lambda: "X device"},
    )


def test_supported_properties_lists_every_key_with_mutability() -> None:
    props = make_set()
    supported = props.get("SUPPORTED_PROPERTIES")
    assert supported["FULL_DEVICE_NAME"] is Mutability.RO
    assert supported["PERFORMANCE_HINT"] is Mutability.RW
    for key in supported:
        props.get(key)


def test_values_are_parsed_and_validated() -> None:
    props = make_set()
    props.set({"PERFORMANCE_HINT": "throughput", "PERF_COUNT": "YES", "NUM_STREAMS": "AUTO"})
    assert props.get("PERFORMANCE_HINT") == "THROUGHPUT"
    assert props.get("PERF_COUNT") is True
    assert props.get("NUM_STREAMS") == -1


def test_unknown_key_names_the_supported_ones() -> None:
    with pytest.raises(PropertyError, match="supported: .*PERFORMANCE_HINT"):
        make_set().get("NO_SUCH_KEY")


def test_bad_value_lists_supported_values() -> None:
    with pytest.raises(PropertyError, match="Supported values: LATENCY, THROUGHPUT"):
        make_set().set({"PERFORMANCE_HINT": "FASTEST"})


def test_read_only_keys_cannot_be_written() -> None:
    with pytest.raises(PropertyError, match="read-only"):
        make_set().set({"FULL_DEVICE_NAME": "other"})


def test_a_failing_key_leaves_every_value_unchanged() -> None:
    props = make_set()
    with pytest.raises(PropertyError):
        props.set({"PERF_COUNT": True, "PERFORMANCE_HINT": "bogus"})
    assert props.get("PERF_COUNT") is False
