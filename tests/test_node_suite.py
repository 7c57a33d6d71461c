"""Tests for aioplug.testing.node_suite: case generation, the safe cache, comparison and the runner."""

from __future__ import annotations

import json
import shutil
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from aioplug.testing import node_suite
from aioplug.testing.node_suite import (
    CaseStatus,
    NodeCase,
    compare_outputs,
    load_node_cases,
    reference_backend,
    run_node_suite,
    run_node_suite_async,
)

# onnx 1.23's node-case generators (onnx.backend.test.case.node.collect_testcases,
# which includes the `_expanded` function-expansion variants) produce 1,884 cases.
# Ten of them have random expected outputs and are excluded by default:
#   * every Bernoulli case and its expansion (test_bernoulli[_double|_seed][_expanded]: 6),
#   * Dropout in training mode with ratio > 0 (test_training_dropout[_default][_mask]: 4);
#     training Dropout with ratio 0 and inference-mode Dropout are deterministic and stay.
ALL_CASES = 1884
RANDOM_CASES = frozenset(
    {
        "test_bernoulli",
        "test_bernoulli_expanded",
        "test_bernoulli_double",
        "test_bernoulli_double_expanded",
        "test_bernoulli_seed",
        "test_bernoulli_seed_expanded",
        "test_training_dropout",
        "test_training_dropout_mask",
        "test_training_dropout_default",
        "test_training_dropout_default_mask",
    }
)
DETERMINISTIC_CASES = ALL_CASES - len(RANDOM_CASES)  # 1874
SMALL_SUBSET = r"^test_(abs|add|relu|conv)"

pytestmark = pytest.mark.skipif(
    not onnx.__version__.startswith("1.23."), reason="case counts are established for onnx 1.23"
)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private cache directory, filled once per session (generation takes about 9 s)."""
    return tmp_path_factory.mktemp("aioplug-cache")


@pytest.fixture(scope="session")
def generated(cache_dir: Path) -> list[NodeCase]:
    """Cases as first generated (this call writes the cache)."""
    return load_node_cases(cache_dir=cache_dir, include_random=True)


def _cache_root(cache_dir: Path) -> Path:
    (root,) = cache_dir.glob("onnx-*")
    return root


def _same_value(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(_same_value, a, b))
    if not isinstance(b, np.ndarray) or a.dtype != b.dtype or a.shape != b.shape:
        return False
    return bool((a == b).all()) if a.dtype == object else a.tobytes() == b.tobytes()


def _same_case(a: NodeCase, b: NodeCase) -> bool:
    return (
        (a.name, a.op_type, a.domain, a.rtol, a.atol) == (b.name, b.op_type, b.domain, b.rtol, b.atol)
        and a.model.SerializeToString() == b.model.SerializeToString()
        and len(a.data_sets) == len(b.data_sets)
        and all(
            len(x) == len(y) and all(map(_same_value, x, y))
            for (ia, oa), (ib, ob) in zip(a.data_sets, b.data_sets, strict=True)
            for x, y in ((ia, ib), (oa, ob))
        )
    )


# --------------------------------------------------------------------------- loading


def test_generated_count_and_random_exclusion(generated: list[NodeCase], cache_dir: Path) -> None:
    assert len(generated) == ALL_CASES
    deterministic = load_node_cases(cache_dir=cache_dir)
    assert len(deterministic) == DETERMINISTIC_CASES
    assert {case.name for case in generated} - {case.name for case in deterministic} == RANDOM_CASES
    assert {case.name for case in generated if node_suite.is_random_case(case)} == RANDOM_CASES


def test_cases_carry_op_type_tolerances_and_expansions(generated: list[NodeCase]) -> None:
    by_name = {case.name: case for case in generated}
    assert by_name["test_abs"].op_type == "Abs"
    assert by_name["test_celu_expanded"].op_type == "Celu"  # expansion keeps its base op
    assert by_name["test_celu_expanded"].expanded
    assert all((case.rtol, case.atol) == (1e-3, 1e-7) for case in generated)
    assert sum(case.expanded for case in generated) > 400


def test_values_keep_sequences_and_optionals(generated: list[NodeCase]) -> None:
    by_name = {case.name: case for case in generated}
    sequence_input = by_name["test_sequence_insert_at_back"].inputs[0]
    assert isinstance(sequence_input, list) and all(isinstance(v, np.ndarray) for v in sequence_input)
    assert any(v is None for case in generated for v in case.inputs + case.outputs)
    assert any(v.dtype == object for case in generated for v in case.inputs if isinstance(v, np.ndarray))


def test_cache_round_trip_is_identical(generated: list[NodeCase], cache_dir: Path) -> None:
    from_disk = load_node_cases(cache_dir=cache_dir, include_random=True)
    assert [c.name for c in from_disk] == [c.name for c in generated]
    assert all(_same_case(a, b) for a, b in zip(generated, from_disk, strict=True))
    index = json.loads((_cache_root(cache_dir) / "index.json").read_text())
    assert index["onnx_version"] == onnx.__version__
    with zipfile.ZipFile(_cache_root(cache_dir) / "cases.zip") as archive:  # onnx's data-folder layout
        assert {"test_abs/model.onnx", "test_abs/test_data_set_0/input_0.pb"} <= set(archive.namelist())


def test_pattern_filters_names(cache_dir: Path, generated: list[NodeCase]) -> None:
    cases = load_node_cases(cache_dir=cache_dir, pattern=r"^test_abs$")
    assert [case.name for case in cases] == ["test_abs"]


def _copied_cache(cache_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the session cache (index + archive) to damage."""
    shutil.copytree(_cache_root(cache_dir), tmp_path / _cache_root(cache_dir).name)
    return tmp_path / _cache_root(cache_dir).name


def _abs_case(generated: list[NodeCase]) -> NodeCase:
    return next(case for case in generated if case.name == "test_abs")


def test_corrupt_case_file_is_regenerated(generated: list[NodeCase], cache_dir: Path, tmp_path: Path) -> None:
    root = _copied_cache(cache_dir, tmp_path)
    member = "test_abs/test_data_set_0/output_0.pb"
    with zipfile.ZipFile(root / "cases.zip") as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    original, members[member] = members[member], b"\x08garbage"  # valid zip, wrong content
    with zipfile.ZipFile(root / "cases.zip", "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    (case,) = load_node_cases(cache_dir=tmp_path, pattern=r"^test_abs$")
    assert _same_case(case, _abs_case(generated))
    with zipfile.ZipFile(root / "cases.zip") as archive:
        assert archive.read(member) == original


def test_damaged_archive_is_regenerated(generated: list[NodeCase], cache_dir: Path, tmp_path: Path) -> None:
    root = _copied_cache(cache_dir, tmp_path)
    (root / "cases.zip").write_bytes((root / "cases.zip").read_bytes()[:1000])  # truncated
    (case,) = load_node_cases(cache_dir=tmp_path, pattern=r"^test_abs$")
    assert _same_case(case, _abs_case(generated))
    assert (root / "cases.zip").stat().st_size == (_cache_root(cache_dir) / "cases.zip").stat().st_size


def test_corrupt_index_is_regenerated(cache_dir: Path, tmp_path: Path, generated: list[NodeCase]) -> None:
    root = _copied_cache(cache_dir, tmp_path)
    (root / "index.json").write_text("{not json")
    cases = load_node_cases(cache_dir=tmp_path, pattern=r"^test_relu$")
    assert [case.name for case in cases] == ["test_relu"]
    assert json.loads((root / "index.json").read_text())["onnx_version"] == onnx.__version__


def test_default_cache_dir_respects_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AIOPLUG_CACHE_DIR", str(tmp_path / "a"))
    assert node_suite.default_cache_dir() == tmp_path / "a" / "node_cases"
    monkeypatch.delenv("AIOPLUG_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert node_suite.default_cache_dir() == tmp_path / "x" / "aioplug" / "node_cases"


# --------------------------------------------------------------------------- comparison


def test_compare_outputs_passes_within_tolerance() -> None:
    expected = [np.array([1.0, np.nan, np.inf], np.float32), np.array([3], np.int64)]
    actual = [np.array([1.0005, np.nan, np.inf], np.float32), np.array([3], np.int64)]
    compare_outputs(expected, actual, rtol=1e-3, atol=1e-7)


@pytest.mark.parametrize(
    ("actual", "match"),
    [
        ([np.array([1.0, 2.5], np.float32)], "1 of 2 values differ"),
        ([np.array([1.0, 2.0], np.float64)], "dtype mismatch"),
        ([np.array([[1.0, 2.0]], np.float32)], "shape mismatch"),
        ([np.array([1.0, np.nan], np.float32)], "values differ"),
        ([], "expected 1 output"),
        ([[np.array([1.0, 2.0], np.float32)]], "expected a float32 tensor"),
    ],
)
def test_compare_outputs_rejects(actual: list[Any], match: str) -> None:
    with pytest.raises(AssertionError, match=match):
        compare_outputs([np.array([1.0, 2.0], np.float32)], actual, rtol=1e-3, atol=1e-7)


def test_compare_outputs_exact_for_integers_strings_and_optionals() -> None:
    with pytest.raises(AssertionError, match="exact comparison"):
        compare_outputs([np.array([10**9], np.int64)], [np.array([10**9 + 1], np.int64)], rtol=1e-3, atol=1e-7)
    with pytest.raises(AssertionError, match="exact comparison"):
        compare_outputs([np.array(["a"], object)], [np.array(["b"], object)], 1e-3, 1e-7)
    with pytest.raises(AssertionError, match="empty optional"):
        compare_outputs([None], [np.array([1.0])], 1e-3, 1e-7)
    compare_outputs([np.array(["a"], object), None], [np.array(["a"], object), None], 1e-3, 1e-7)
    sequence = [np.array([1, 2], np.int32), np.array([3], np.int32)]
    compare_outputs([sequence], [[s.copy() for s in sequence]], 1e-3, 1e-7)
    with pytest.raises(AssertionError, match=r"output 0\[1\]"):
        compare_outputs([sequence], [[sequence[0], np.array([4], np.int32)]], 1e-3, 1e-7)


# --------------------------------------------------------------------------- running


def test_reference_backend_passes_small_subset(cache_dir: Path, generated: list[NodeCase]) -> None:
    cases = load_node_cases(cache_dir=cache_dir, pattern=SMALL_SUBSET)
    seen: list[int] = []
    report = run_node_suite(reference_backend(), cases, progress=lambda done, total, _: seen.append(done))
    assert report.total == len(cases) > 20
    assert report.passed == report.total, report.format_table(only_problems=True)
    assert seen == list(range(1, len(cases) + 1))
    assert report.format_table().startswith(f"{report.total} passed, 0 failed, 0 errored of {report.total}")


def _cases(cache_dir: Path) -> list[NodeCase]:
    return load_node_cases(cache_dir=cache_dir, pattern=r"^test_(abs|relu|neg)$")


def _faulty(model: onnx.ModelProto, inputs: list[Any]) -> Sequence[Any]:
    """Right for Abs, raises for Relu, wrong for Neg."""
    op = model.graph.node[0].op_type
    if op == "Relu":
        raise RuntimeError("boom")
    return [np.abs(inputs[0])] if op == "Abs" else [inputs[0]]


def test_run_classifies_passed_failed_errored(cache_dir: Path, generated: list[NodeCase]) -> None:
    report = run_node_suite(_faulty, _cases(cache_dir))
    status = {result.name: result.status for result in report.results}
    assert status == {"test_abs": CaseStatus.PASSED, "test_relu": CaseStatus.ERRORED, "test_neg": CaseStatus.FAILED}
    assert (report.passed, report.failed, report.errored, report.total) == (1, 1, 1, 3)
    assert report.by_op_type() == {"Abs": (1, 0, 0), "Neg": (0, 1, 0), "Relu": (0, 0, 1)}
    table = report.format_table(only_problems=True)
    assert "1 passed, 1 failed, 1 errored of 3" in table and "RuntimeError: boom" in table
    assert "Abs " not in table


def test_async_runner(cache_dir: Path, generated: list[NodeCase]) -> None:
    async def run(model: onnx.ModelProto, inputs: list[Any]) -> Sequence[Any]:
        return _faulty(model, inputs)

    report = run_node_suite(run, _cases(cache_dir))  # a coroutine function is driven by asyncio.run
    assert (report.passed, report.failed, report.errored) == (1, 1, 1)

    import asyncio

    report = asyncio.run(run_node_suite_async(run, _cases(cache_dir)))
    assert (report.passed, report.failed, report.errored) == (1, 1, 1)


def test_main_prints_table(cache_dir: Path, generated: list[NodeCase], capsys: pytest.CaptureFixture[str]) -> None:
    code = node_suite.main(["--backend", "reference", "--pattern", r"^test_abs$", "--cache-dir", str(cache_dir)])
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("1 passed, 0 failed, 0 errored of 1")
    assert node_suite.main(["--backend", "nope", "--cache-dir", str(cache_dir)]) == 2
