from __future__ import annotations

import asyncio
import os
import pathlib
import statistics
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx.reference import ReferenceEvaluator

from aioplug.cli import main
from aioplug.testing.models import add_model, multi_io_model

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_devices_prints_a_table_of_devices(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["devices"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:3] == ["device", "full", "name"]
    assert "TEMPLATE" in out and "EXPORT_IMPORT" in out


def test_run_prints_outputs_computed_from_npy_inputs(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model_path = tmp_path / "add.onnx"
    onnx.save(add_model(), model_path)
    a = np.array([[1.5, 2.0, -3.0, 4.0]], np.float32)
    b = np.array([[10.0, 20.0, 30.0, 40.0]], np.float32)
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    code = main(["run", str(model_path), "-d", "TEMPLATE", "--input", f"a={tmp_path / 'a.npy'}", "--input", f"b={tmp_path / 'b.npy'}"])
    assert code == 0
    out = capsys.readouterr().out
    expected = ReferenceEvaluator(add_model()).run(None, {"a": a, "b": b})[0]
    assert "y =" in out
    for value in expected.ravel():
        assert f"{value:g}" in out


def test_run_explains_a_missing_dynamic_input(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    model_path = tmp_path / "multi.onnx"
    onnx.save(multi_io_model(), model_path)
    assert main(["run", str(model_path), "-d", "TEMPLATE"]) == 2
    assert "give it with --input x=FILE.npy" in capsys.readouterr().err


def test_benchmark_interleaves_rounds_against_a_peer(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("onnxruntime")
    model_path = tmp_path / "add.onnx"
    onnx.save(add_model(), model_path)
    code = main(["benchmark", str(model_path), "-d", "CPU", "-n", "7", "--compare", "onnxruntime", "--rounds", "2"])
    assert code == 0
    captured = capsys.readouterr()
    rows = {line.split()[0]: line.split() for line in captured.out.splitlines()[3:]}
    assert rows["aioplug"][3] == "7" and rows["onnxruntime"][2] == "7"  # every inference counted
    # two slices each, in a rotating order: 4 + 3 inferences
    slices = [line.split(":")[0] for line in captured.err.splitlines() if "[" in line]
    assert slices == ["aioplug CPU [1/2]", "onnxruntime [1/2]", "onnxruntime [2/2]", "aioplug CPU [2/2]"]
    assert "4/4 inferences" in captured.err and "3/3 inferences" in captured.err


def test_benchmark_keeps_each_rounds_latencies_for_paired_ratios() -> None:
    pytest.importorskip("onnxruntime")
    from aioplug._benchmark import Budget, paired_ratios, run_benchmark

    results = asyncio.run(run_benchmark(
        add_model(), "CPU", budget=Budget(count=9), compare=["onnxruntime"], rounds=3
    ))
    for result in results:
        assert [len(part) for part in result.rounds] == [3, 3, 3]
        assert result.latencies == tuple(t for part in result.rounds for t in part)
    ours, peer = results
    ratios = paired_ratios(ours, peer)
    assert len(ratios) == 3
    middle = statistics.median(ours.rounds[1]) / statistics.median(peer.rounds[1])
    assert ratios[1] == pytest.approx(middle)


def test_paired_ratios_pair_rounds_not_medians() -> None:
    from aioplug._benchmark import BenchmarkResult, paired_ratios

    # the machine halves its speed in round 2: each round's ratio is 2, the medians' is not
    fast = BenchmarkResult("a", (1.0, 1.0, 1.0, 4.0), 10.0, 1, ((1.0, 1.0, 1.0), (4.0,)))
    slow = BenchmarkResult("b", (2.0, 8.0), 10.0, 1, ((2.0,), (8.0,)))
    assert paired_ratios(slow, fast) == [2.0, 2.0]
    assert slow.median / fast.median != 2.0
    assert paired_ratios(slow, BenchmarkResult("c", (1.0,), 1.0, 1)) == []


def test_the_comparison_table_quotes_paired_latency_ratios() -> None:
    from aioplug._benchmark import BenchmarkResult, format_results, latency_ratio

    fast = BenchmarkResult("a", (1.0, 1.0, 1.0, 4.0), 10.0, 1, ((1.0, 1.0, 1.0), (4.0,)))
    slow = BenchmarkResult("b", (2.0, 8.0), 10.0, 1, ((2.0,), (8.0,)))
    assert latency_ratio(slow, fast) == 2.0
    assert latency_ratio(BenchmarkResult("c", (3.0,), 1.0, 1), fast) == 3.0  # no rounds: medians
    rows = {line.split()[0]: line.split() for line in format_results([fast, slow]).splitlines()[2:]}
    assert rows["b"][7] == "2.00x"


def test_benchmark_budget_splits_into_rounds() -> None:
    from aioplug._benchmark import Budget, split_budget

    assert [b.count for b in split_budget(Budget(count=10), 3)] == [4, 3, 3]
    assert [b.seconds for b in split_budget(Budget(seconds=6.0), 4)] == [1.5] * 4
    assert [b.seconds for b in split_budget(Budget(), 2)] == [5.0, 5.0]  # the 10 s default


def test_run_reports_an_unknown_device(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    model_path = tmp_path / "add.onnx"
    onnx.save(add_model(), model_path)
    assert main(["run", str(model_path), "-d", "NOPE"]) == 2
    assert "DeviceNotFound" in capsys.readouterr().err


@pytest.mark.parametrize("example", sorted(p.name for p in (ROOT / "examples").glob("*.py")))
def test_examples_run(example: str) -> None:
    env = dict(os.environ)
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / example)],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
