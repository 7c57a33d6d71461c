"""The ONNX backend node cases, run through the runtime on every bundled device.

Each device has an explicit list of cases it is known not to pass, with the reason; any other
case that does not pass fails this test, and so does a known failure that starts passing
(so the list stays true).
"""

from __future__ import annotations

import asyncio

import onnx
import pytest

from aioplug.testing.node_suite import load_node_cases, run_node_suite_on_device

KNOWN_FAILURES = {
    "CPU": set(),
    # TEMPLATE's kernels are onnx.reference's; these are that evaluator's own limitations.
    "TEMPLATE": {
        "test_if_opt",
        "test_range_float_type_positive_delta_expanded",
        "test_range_float16_type_positive_delta_expanded",
        "test_range_bfloat16_type_positive_delta_expanded",
        "test_range_int32_type_negative_delta_expanded",
        "test_scan_sum",
        "test_scatter_without_axis",
        "test_scatter_with_axis",
    },
}


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> list[object]:
    return list(load_node_cases())


@pytest.mark.parametrize("device", sorted(KNOWN_FAILURES))
def test_device_passes_the_onnx_node_cases(device: str, cases: list[object]) -> None:
    report = asyncio.run(run_node_suite_on_device(device, cases))  # type: ignore[arg-type]
    problems = {r.name: r.message for r in report.problems()}
    unexpected = {name: msg for name, msg in problems.items() if name not in KNOWN_FAILURES[device]}
    now_passing = KNOWN_FAILURES[device] - set(problems)
    print(f"{device}: {report.summary_line()}")
    assert not unexpected, "\n".join(f"{n}: {m}" for n, m in sorted(unexpected.items()))
    assert not now_passing, f"known failures that now pass (remove them): {sorted(now_passing)}"
    if onnx.__version__.startswith("1.23."):
        assert report.total == 1874  # 1,884 cases less the 10 random ones
