from __future__ import annotations

import io
import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import aioplug
from aioplug import (
    ClosedError,
    DeviceError,
    DeviceNameError,
    DeviceNotFound,
    ImportExportError,
    MalformedModel,
    PropertyError,
    ShapeInferenceError,
    UnsupportedOp,
)
from aioplug.testing.models import add_model

pytestmark = pytest.mark.anyio


def custom_op_model() -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph(
        [
            helper.make_node("Relu", ["x"], ["r"]),
            helper.make_node("Frobnicate", ["r"], ["y"], domain="com.example"),
        ],
        "custom",
        [x],
        [y],
    )
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 3)]
    )


# -- reading models ------------------------------------------------------------------------
def test_read_model_accepts_proto_bytes_and_path(tmp_path: os.PathLike[str]) -> None:
    proto = add_model()
    path = os.path.join(tmp_path, "add.onnx")
    onnx.save(proto, path)
    for source in (proto, proto.SerializeToString(), path):
        model = aioplug.read_model(source)
        assert [p.name for p in model.inputs] == ["a", "b"]
        assert model.inputs[0].dtype == np.float32 and model.inputs[0].shape == (1, 4)


def test_read_model_does_not_mutate_the_callers_proto() -> None:
    proto = add_model()
    proto.graph.node[0].name = ""
    before = proto.SerializeToString()
    model = aioplug.read_model(proto)
    assert proto.SerializeToString() == before
    assert model.nodes[0].name  # unnamed nodes get a unique name


def test_same_content_gives_the_same_hash() -> None:
    assert aioplug.read_model(add_model()).content_hash == aioplug.read_model(add_model()).content_hash
    assert aioplug.read_model(add_model((2, 4))).content_hash != aioplug.read_model(add_model()).content_hash


@pytest.mark.parametrize("source", [b"not a model", b"", 12, "/no/such/model.onnx"])
def test_malformed_sources_raise_malformed_model(source: object) -> None:
    with pytest.raises(MalformedModel):
        aioplug.read_model(source)  # type: ignore[arg-type]


def test_an_op_its_opset_does_not_define_is_named_with_the_opset() -> None:
    proto = add_model()
    proto.graph.node[0].op_type = "Addd"
    with pytest.raises(UnsupportedOp, match=r"ai\.onnx::Addd \(opset 17\)") as info:
        aioplug.read_model(proto)
    assert info.value.ops == (("", "Addd", 17),)


def test_incompatible_shapes_raise_shape_inference_error() -> None:
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [2, 3])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, [4, 5])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])
    graph = helper.make_graph([helper.make_node("Add", ["a", "b"], ["y"])], "bad", [a, b], [y])
    with pytest.raises(ShapeInferenceError, match="Incompatible dimensions"):
        aioplug.read_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))


# -- devices and plugins -------------------------------------------------------------------
def test_entry_point_devices_are_registered_and_available() -> None:
    core = aioplug.Core()
    assert "TEMPLATE" in core.registered_devices
    assert "TEMPLATE" in core.available_devices


def test_unknown_device_lists_the_available_ones() -> None:
    with pytest.raises(DeviceNotFound, match="available devices: .*TEMPLATE"):
        aioplug.Core().get_property("NOPE", "FULL_DEVICE_NAME")


def test_device_ids_are_checked() -> None:
    core = aioplug.Core()
    assert core.get_property("TEMPLATE.0", "FULL_DEVICE_NAME")
    with pytest.raises(DeviceNotFound, match="available ids: 0"):
        core.get_property("TEMPLATE.110", "FULL_DEVICE_NAME")
    with pytest.raises(DeviceNameError):
        core.get_property("TEMPLATE.l0", "FULL_DEVICE_NAME")


def test_register_plugin_under_a_new_name_and_refuse_a_taken_one() -> None:
    import aioplug_template

    core = aioplug.Core()
    core.register_plugin(aioplug_template, "MYDEV")
    assert core.get_property("MYDEV", "FULL_DEVICE_NAME") == core.get_property("TEMPLATE", "FULL_DEVICE_NAME")
    with pytest.raises(DeviceError, match="already registered"):
        core.register_plugin(aioplug_template, "TEMPLATE")
    with pytest.raises(DeviceNameError):
        core.register_plugin(aioplug_template, "BAD.NAME")


def test_plugins_mapping_is_the_plugins_xml_analogue() -> None:
    core = aioplug.Core({"MINE": "aioplug_template:create_plugin_engine"}, load_entry_points=False)
    assert core.registered_devices == ["MINE"]
    assert core.available_devices == ["MINE"]
    with pytest.raises(DeviceError, match="cannot import"):
        aioplug.Core({"X": "no_such_module_xyz"}, load_entry_points=False).get_plugin("X")


def test_a_plugin_factory_that_fails_raises_device_error() -> None:
    def broken() -> aioplug.plugin.Plugin:
        raise RuntimeError("no backend")

    core = aioplug.Core(load_entry_points=False)
    core.register_plugin(broken, "BROKEN")
    with pytest.raises(DeviceError, match="failed to load: no backend"):
        core.get_plugin("BROKEN")
    assert core.available_devices == []


def test_device_and_core_properties() -> None:
    core = aioplug.Core()
    core.set_property("TEMPLATE", {"PERFORMANCE_HINT": "THROUGHPUT"})
    assert core.get_property("TEMPLATE", "PERFORMANCE_HINT") == "THROUGHPUT"
    core.set_property({"CACHE_DIR": "/tmp/x"})
    assert core.get_property("CACHE_DIR") == "/tmp/x"
    with pytest.raises(PropertyError):
        core.set_property({"NOT_A_CORE_KEY": 1})
    # a device list sets the virtual device's own properties
    core.set_property("AUTO:TEMPLATE", {"PERF_COUNT": True})
    assert core.get_property("AUTO", "PERF_COUNT") is True
    assert core.get_property("TEMPLATE", "PERF_COUNT") is False
    with pytest.raises(DeviceNotFound):
        core.set_property("AUTO:NO_SUCH_DEVICE", {"PERF_COUNT": True})


def test_query_model_maps_supported_nodes_to_the_device() -> None:
    core = aioplug.Core()
    model = core.read_model(custom_op_model())
    assert core.query_model(model, "TEMPLATE") == {model.nodes[0].name: "TEMPLATE.0"}


async def test_compiling_an_unsupported_op_names_it_with_its_opset() -> None:
    async with aioplug.Core() as core:
        with pytest.raises(UnsupportedOp, match=r"com\.example::Frobnicate \(opset 3\)"):
            await core.compile_model(custom_op_model(), "TEMPLATE")
        compiled = await core.compile_model(add_model(), "TEMPLATE")  # the device still works
        assert compiled.get_property("NETWORK_NAME") == "add"


async def test_an_unopened_core_says_how_to_open_it() -> None:
    core = aioplug.Core()
    with pytest.raises(ClosedError, match="async with aioplug.Core"):
        await core.compile_model(add_model(), "TEMPLATE")


async def test_a_closed_core_refuses_work_and_closes_its_models() -> None:
    async with aioplug.Core() as core:
        compiled = await core.compile_model(add_model(), "TEMPLATE")
    assert compiled.closed
    with pytest.raises(ClosedError):
        await core.compile_model(add_model(), "TEMPLATE")
    with pytest.raises(ClosedError):
        await compiled.infer({"a": np.zeros((1, 4), np.float32), "b": np.zeros((1, 4), np.float32)})


async def test_an_error_in_the_body_propagates_unwrapped() -> None:
    with pytest.raises(KeyError):
        async with aioplug.Core():
            raise KeyError("mine")


async def test_compile_property_errors_are_typed() -> None:
    async with aioplug.Core() as core:
        with pytest.raises(PropertyError, match="NOT_A_KEY"):
            await core.compile_model(add_model(), "TEMPLATE", {"NOT_A_KEY": 1})
        with pytest.raises(PropertyError, match="Supported values"):
            await core.compile_model(add_model(), "TEMPLATE", {"PERFORMANCE_HINT": "FAST"})


# -- export, import, cache -----------------------------------------------------------------
async def exported_blob(core: aioplug.Core) -> bytes:
    compiled = await core.compile_model(add_model(), "TEMPLATE")
    stream = io.BytesIO()
    compiled.export_model(stream)
    return stream.getvalue()


async def test_import_rejects_other_versions_and_plugin_versions(monkeypatch: pytest.MonkeyPatch) -> None:
    async with aioplug.Core() as core:
        blob = await exported_blob(core)
        plugin = core.get_plugin("TEMPLATE")
        monkeypatch.setattr(type(plugin), "version", "9.9.9")
        with pytest.raises(ImportExportError, match="plugin version 0.1.0; this plugin is 9.9.9"):
            await core.import_model(io.BytesIO(blob), "TEMPLATE")
        monkeypatch.undo()
        monkeypatch.setattr("aioplug._blob.__version__", "0.0.1")
        with pytest.raises(ImportExportError, match="exported by aioplug 0.1.0"):
            await core.import_model(io.BytesIO(blob), "TEMPLATE")


async def test_cache_key_follows_caching_properties_and_stale_entries_are_replaced(
    tmp_path: os.PathLike[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cache_dir = os.path.join(tmp_path, "cache")
    async with aioplug.Core() as core:
        core.set_property({"CACHE_DIR": cache_dir})
        first = await core.compile_model(add_model(), "TEMPLATE")
        again = await core.compile_model(add_model(), "TEMPLATE")
        other = await core.compile_model(add_model(), "TEMPLATE", {"EXECUTION_MODE_HINT": "ACCURACY"})
        assert [m.get_property("LOADED_FROM_CACHE") for m in (first, again, other)] == [False, True, False]
        assert len(os.listdir(cache_dir)) == 2
        # an entry written by another plugin version under the same key is stale
        entry = sorted(os.listdir(cache_dir))[0]
        with open(os.path.join(cache_dir, entry), "r+b") as handle:
            handle.seek(40)
            handle.write(b"\xff\xff\xff")
        recompiled = [
            await core.compile_model(add_model(), "TEMPLATE"),
            await core.compile_model(add_model(), "TEMPLATE", {"EXECUTION_MODE_HINT": "ACCURACY"}),
        ]
        assert sorted(m.get_property("LOADED_FROM_CACHE") for m in recompiled) == [False, True]
        again = await core.compile_model(add_model(), "TEMPLATE")
        assert again.get_property("LOADED_FROM_CACHE") is True
