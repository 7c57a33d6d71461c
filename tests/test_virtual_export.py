"""Export, import and model caching of the virtual devices AUTO and HETERO.

A HETERO export holds its split plan, the original model and each part's own blob; importing it
imports every part on its device, compiling nothing. An AUTO export holds the device it chose
(and its fallback candidates); importing it lands on the same device. MULTI does not export,
as in OpenVINO. With ``CACHE_DIR``, both are cached whole, under keys that fold in the devices
they drive and those devices' configuration.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx.reference import ReferenceEvaluator

import aioplug
from aioplug import ImportExportError
from aioplug.testing.models import accumulator_model, add_model, small_cnn_model
from aioplug_auto.compiled_model import AutoCompiledModel
from aioplug_hetero import HeteroCompiledModel

pytestmark = pytest.mark.anyio

HETERO = "HETERO:TEMPLATE,CPU"


# -- helpers -----------------------------------------------------------------------------
def _reference(model: onnx.ModelProto, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    return [np.asarray(v) for v in ReferenceEvaluator(model).run(None, feed)]


def _image(seed: int) -> dict[str, np.ndarray]:
    return {"image": np.random.default_rng(seed).standard_normal((1, 3, 32, 32)).astype(np.float32)}


def _export(compiled: aioplug.CompiledModel) -> bytes:
    stream = io.BytesIO()
    compiled.export_model(stream)
    return stream.getvalue()


def _count_compiles(core: aioplug.Core, monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts compile_model and import_model calls of the hardware plugins."""
    calls: Counter[str] = Counter()
    for device in ("CPU", "TEMPLATE"):
        plugin = core.get_plugin(device)
        for method in ("compile_model", "import_model"):
            original = getattr(plugin, method)

            def spy(*args: Any, _original: Any = original, _key: str = f"{device} {method}") -> Any:
                calls[_key] += 1
                return _original(*args)

            monkeypatch.setattr(plugin, method, spy)
    return calls


def _entries(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if p.is_file()}


@pytest.fixture
async def core() -> AsyncIterator[aioplug.Core]:
    """A Core whose TEMPLATE refuses Relu, so HETERO cuts the small CNN into five parts."""
    async with aioplug.Core() as opened:
        opened.set_property("TEMPLATE", {"TEST_UNSUPPORTED_OPS": ["Relu"]})
        yield opened


# == HETERO ==============================================================================
async def test_hetero_round_trip_imports_each_part_on_its_device(
    core: aioplug.Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = small_cnn_model()
    compiled = await core.compile_model(model, HETERO)
    assert isinstance(compiled, HeteroCompiledModel)
    assert len(compiled.parts) == 5
    blob = _export(compiled)
    calls = _count_compiles(core, monkeypatch)
    for device in (HETERO, "HETERO"):
        imported = await core.import_model(io.BytesIO(blob), device)
        assert isinstance(imported, HeteroCompiledModel)
        assert imported.subgraphs == compiled.subgraphs
        assert imported.targets == compiled.targets
        assert imported.get_property("EXECUTION_DEVICES") == ["TEMPLATE.0", "CPU.0"]
        assert imported.get_property("MULTI_DEVICE_PRIORITIES") == "TEMPLATE,CPU"
        assert imported.get_property("LOADED_FROM_CACHE") is False
        assert [p.get_property("EXECUTION_DEVICES") for p in imported.parts] == [
            p.get_property("EXECUTION_DEVICES") for p in compiled.parts
        ]
        for ours, theirs in ((compiled.inputs, imported.inputs), (compiled.outputs, imported.outputs)):
            assert [(p.name, p.dtype, p.shape) for p in ours] == [(p.name, p.dtype, p.shape) for p in theirs]
        feed = _image(1)
        original, again = await compiled.infer(feed), await imported.infer(feed)
        np.testing.assert_array_equal(again["probs"], original["probs"])
        np.testing.assert_allclose(again["probs"], _reference(model, feed)[0], rtol=1e-5, atol=1e-6)
    # every part was imported on its device, none compiled
    assert calls == Counter({"TEMPLATE import_model": 6, "CPU import_model": 4})


async def test_hetero_import_keeps_variable_states(core: aioplug.Core) -> None:
    core.set_property("TEMPLATE", {"TEST_UNSUPPORTED_OPS": ["Mul"]})  # Add on TEMPLATE, Mul on CPU
    model = accumulator_model()
    compiled = await core.compile_model(model, HETERO, {"VARIABLE_STATES": {"acc_in": "acc_out"}})
    assert isinstance(compiled, HeteroCompiledModel) and len(compiled.parts) == 2
    await compiled.infer({"x": np.ones((1, 4), np.float32)})  # state of another request
    imported = await core.import_model(_export(compiled), "HETERO")
    assert imported.get_property("VARIABLE_STATES") == {"acc_in": "acc_out"}
    request = imported.create_infer_request()
    assert [state.name for state in request.query_state()] == ["acc_in"]
    assert [p.name for p in imported.inputs] == ["x"]
    acc = np.zeros((1, 4), np.float32)
    for x in (np.ones((1, 4), np.float32), np.arange(4, dtype=np.float32).reshape(1, 4)):
        out = await request.infer({"x": x})
        y, acc = _reference(model, {"x": x, "acc_in": acc})
        np.testing.assert_allclose(out["y"], y)


@pytest.mark.parametrize("damage", ["truncated", "flipped_byte", "inner_length"])
async def test_damaged_hetero_stream_is_rejected(core: aioplug.Core, damage: str) -> None:
    compiled = await core.compile_model(add_model(), "HETERO:CPU")
    blob = _export(compiled)
    if damage == "truncated":
        data = blob[: len(blob) // 2]
    elif damage == "flipped_byte":
        flipped = bytearray(blob)
        flipped[len(blob) - 100] ^= 0x01  # inside the last part's blob
        data = bytes(flipped)
    else:  # a consistent outer blob whose bundle lies about its section lengths
        from aioplug._blob import read_blob, write_blob

        header, payload = read_blob(blob, "HETERO")
        stream = io.BytesIO()
        write_blob(stream, header, payload[:-5])
        data = stream.getvalue()
    with pytest.raises(ImportExportError):
        await core.import_model(io.BytesIO(data), "HETERO")
    imported = await core.import_model(blob, "HETERO")  # HETERO is still fine
    feed = {"a": np.ones((1, 4), np.float32), "b": np.full((1, 4), 2, np.float32)}
    np.testing.assert_array_equal((await imported.infer(feed))["y"], np.full((1, 4), 3, np.float32))


async def test_hetero_stream_with_a_part_for_an_unknown_device_is_rejected(tmp_path: Path) -> None:
    async with aioplug.Core() as first:
        first.register_plugin("aioplug_template:create_plugin_engine", "SPARE")
        first.set_property("SPARE", {"TEST_UNSUPPORTED_OPS": ["Relu"]})
        compiled = await first.compile_model(small_cnn_model(), "HETERO:SPARE,CPU")
        assert compiled.get_property("EXECUTION_DEVICES") == ["SPARE.0", "CPU.0"]
        blob = _export(compiled)
    async with aioplug.Core() as second:
        with pytest.raises(ImportExportError, match="SPARE"):
            await second.import_model(blob, "HETERO")
        with pytest.raises(aioplug.DeviceNotFound, match="SPARE"):  # the name itself is wrong
            await second.import_model(blob, "HETERO:SPARE,CPU")
        # a list that leaves out a device the stream runs on is refused too
        with pytest.raises(ImportExportError, match="leaves out"):
            await second.import_model(blob, "HETERO:CPU")


async def test_streams_of_other_devices_are_rejected(core: aioplug.Core) -> None:
    core.register_plugin("aioplug_hetero:create_plugin_engine", "HETERO2")
    foreign = _export(await core.compile_model(add_model(), "HETERO2:TEMPLATE,CPU"))
    with pytest.raises(ImportExportError, match="HETERO2"):
        await core.import_model(foreign, "HETERO")
    auto = _export(await core.compile_model(add_model(), "AUTO:CPU"))
    with pytest.raises(ImportExportError, match="'AUTO'"):
        await core.import_model(auto, HETERO)
    cpu = _export(await core.compile_model(add_model(), "CPU"))
    with pytest.raises(ImportExportError, match="'CPU'"):
        await core.import_model(cpu, "AUTO")


# == AUTO ================================================================================
async def test_auto_round_trip_keeps_its_device_and_its_fallback(
    core: aioplug.Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = small_cnn_model()
    core.set_property("TEMPLATE", {"TEST_UNSUPPORTED_OPS": []})
    compiled = await core.compile_model(model, "AUTO:TEMPLATE,CPU")
    assert compiled.get_property("EXECUTION_DEVICES") == ["TEMPLATE.0"]
    blob = _export(compiled)
    calls = _count_compiles(core, monkeypatch)
    imported = await core.import_model(io.BytesIO(blob), "AUTO")
    assert calls == Counter({"TEMPLATE import_model": 1})
    assert isinstance(imported, AutoCompiledModel)
    assert imported.get_property("EXECUTION_DEVICES") == ["TEMPLATE.0"]
    assert imported.device_name == "AUTO:TEMPLATE,CPU"
    assert imported.get_property("LOADED_FROM_CACHE") is False
    feed = _image(2)
    np.testing.assert_array_equal(
        (await imported.infer(feed))["probs"], (await compiled.infer(feed))["probs"]
    )
    # the fallback candidate compiles the stored model on first need, as after a compile
    assert imported.candidates == 2 and imported.compiled_candidate(1) is None
    fallback = imported.candidate(1)  # compiled on the calling thread
    assert fallback.get_property("EXECUTION_DEVICES") == ["CPU.0"]
    np.testing.assert_allclose(
        (await fallback.infer(feed))["probs"], _reference(model, feed)[0], rtol=1e-5, atol=1e-6
    )
    # a list that leaves out the device AUTO chose is refused
    with pytest.raises(ImportExportError, match="TEMPLATE"):
        await core.import_model(blob, "AUTO:CPU")


async def test_multi_does_not_export(core: aioplug.Core, tmp_path: Path) -> None:
    assert "EXPORT_IMPORT" not in core.get_property("MULTI", "OPTIMIZATION_CAPABILITIES")
    assert "EXPORT_IMPORT" in core.get_property("AUTO", "OPTIMIZATION_CAPABILITIES")
    assert "EXPORT_IMPORT" in core.get_property("HETERO", "OPTIMIZATION_CAPABILITIES")
    multi = await core.compile_model(add_model(), "MULTI:CPU,TEMPLATE")
    with pytest.raises(ImportExportError, match="not exportable"):
        multi.export_model(io.BytesIO())
    cpu = _export(await core.compile_model(add_model(), "CPU"))
    with pytest.raises(ImportExportError, match="MULTI cannot import"):
        await core.import_model(cpu, "MULTI:CPU")
    # AUTO spreading over every device is MULTI: not exported, and not cached
    spread = {"PERFORMANCE_HINT": "CUMULATIVE_THROUGHPUT", "CACHE_DIR": str(tmp_path)}
    for _ in range(2):
        ctput = await core.compile_model(add_model(), "AUTO:CPU,TEMPLATE", spread)
        assert ctput.get_property("LOADED_FROM_CACHE") is False
        assert ctput.get_property("EXECUTION_DEVICES") == ["CPU.0", "TEMPLATE.0"]
    assert _entries(tmp_path) == set()
    with pytest.raises(ImportExportError, match="not exportable"):
        ctput.export_model(io.BytesIO())


# == caching =============================================================================
async def test_hetero_cache_hit_imports_the_parts(
    core: aioplug.Core, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = small_cnn_model()
    config = {"CACHE_DIR": str(tmp_path)}
    first = await core.compile_model(model, HETERO, config)
    assert first.get_property("LOADED_FROM_CACHE") is False
    assert len(_entries(tmp_path)) == 1  # one entry for the whole, none per part
    calls = _count_compiles(core, monkeypatch)
    second = await core.compile_model(model, HETERO, config)
    assert calls == Counter({"TEMPLATE import_model": 3, "CPU import_model": 2})
    assert isinstance(second, HeteroCompiledModel)
    assert second.get_property("LOADED_FROM_CACHE") is True
    assert [p.get_property("LOADED_FROM_CACHE") for p in second.parts] == [True] * 5
    assert second.subgraphs == first.subgraphs  # type: ignore[attr-defined]
    feed = _image(3)
    np.testing.assert_array_equal((await second.infer(feed))["probs"], (await first.infer(feed))["probs"])
    # another device order, or another split, is another entry
    other_order = await core.compile_model(model, "HETERO:CPU,TEMPLATE", config)
    assert other_order.get_property("LOADED_FROM_CACHE") is False
    assert other_order.get_property("EXECUTION_DEVICES") == ["CPU.0"]
    core.set_property("TEMPLATE", {"TEST_UNSUPPORTED_OPS": ["Relu", "MaxPool"]})
    other_split = await core.compile_model(model, HETERO, config)
    assert other_split.get_property("LOADED_FROM_CACHE") is False
    assert len(other_split.parts) == 5 and other_split.subgraphs != first.subgraphs  # type: ignore[attr-defined]
    assert len(_entries(tmp_path)) == 3


async def test_auto_cache_entries_differ_by_device(core: aioplug.Core, tmp_path: Path) -> None:
    model = add_model()
    core.set_property({"CACHE_DIR": str(tmp_path)})
    seen: list[set[str]] = []
    for device, runs_on in (("AUTO:CPU", "CPU.0"), ("AUTO:TEMPLATE", "TEMPLATE.0")):
        first = await core.compile_model(model, device)
        second = await core.compile_model(model, device)
        assert (first.get_property("LOADED_FROM_CACHE"), second.get_property("LOADED_FROM_CACHE")) == (False, True)
        assert second.get_property("EXECUTION_DEVICES") == [runs_on]
        seen.append(_entries(tmp_path))
    assert len(seen[0]) == 1 and len(seen[1]) == 2
    # the configuration of a device AUTO drives is part of the key
    core.set_property("TEMPLATE", {"EXECUTION_MODE_HINT": "ACCURACY"})
    accurate = await core.compile_model(model, "AUTO:TEMPLATE")
    assert accurate.get_property("LOADED_FROM_CACHE") is False
    assert len(_entries(tmp_path)) == 3
    # a cache hit is configured as a fresh compile would be, down to the chosen device's model
    hinted = await core.compile_model(model, "AUTO:CPU", {"PERFORMANCE_HINT": "THROUGHPUT"})
    assert hinted.get_property("LOADED_FROM_CACHE") is True
    assert hinted.get_property("PERFORMANCE_HINT") == "THROUGHPUT"
    assert isinstance(hinted, AutoCompiledModel)
    assert hinted.chosen.get_property("PERFORMANCE_HINT") == "THROUGHPUT"
    assert hinted.chosen.get_property("LOADED_FROM_CACHE") is True


async def test_stale_virtual_cache_entry_is_compiled_again(
    core: aioplug.Core, tmp_path: Path
) -> None:
    model = add_model()
    config = {"CACHE_DIR": str(tmp_path)}
    await core.compile_model(model, "AUTO:CPU", config)
    (entry,) = tmp_path.iterdir()
    data = bytearray(entry.read_bytes())
    data[len(data) // 2] ^= 0xFF
    entry.write_bytes(bytes(data))
    again = await core.compile_model(model, "AUTO:CPU", config)
    assert again.get_property("LOADED_FROM_CACHE") is False
    assert entry.read_bytes() != bytes(data)
    assert (await core.compile_model(model, "AUTO:CPU", config)).get_property("LOADED_FROM_CACHE") is True
