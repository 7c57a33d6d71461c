"""ONNX backend node tests: generate onnx's node cases, cache them safely, run them on any backend.

Recent onnx wheels no longer ship ``onnx/backend/test/data/node``; the cases are
produced here by onnx's own generators (``onnx.backend.test.case.node``), including
the ``_expanded`` function-expansion variants, and cached on disk as plain protobuf
files in onnx's data-folder layout (kept in one uncompressed zip, since thousands of
small files are slow to write) plus a JSON index. Nothing is pickled.

Random cases are excluded by default, because no backend can be expected to
reproduce their expected outputs: every ``Bernoulli`` case (and its expansion) and every
``Dropout`` case that runs in training mode with a ratio above zero. With onnx
1.23.2 the generators yield 1,884 cases, 10 of them random, so 1,874 remain.

Run from the command line::

    python -m aioplug.testing.node_suite --backend reference [--pattern REGEX] [--only-problems]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import enum
import hashlib
import inspect
import io
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import time
import warnings
import zipfile
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import onnx
from google.protobuf.message import DecodeError  # type: ignore[import-untyped,unused-ignore]
from onnx import numpy_helper

__all__ = [
    "DEFAULT_ATOL",
    "DEFAULT_RTOL",
    "AsyncBackend",
    "Backend",
    "CaseStatus",
    "NodeCase",
    "NodeCaseResult",
    "NodeSuiteReport",
    "compare_outputs",
    "default_cache_dir",
    "is_random_case",
    "load_node_cases",
    "main",
    "onnxruntime_backend",
    "reference_backend",
    "run_node_suite",
    "run_node_suite_async",
]

_log = logging.getLogger(__name__)

DEFAULT_RTOL = 1e-3
"""onnx's default relative tolerance for node cases."""
DEFAULT_ATOL = 1e-7
"""onnx's default absolute tolerance for node cases."""

_CACHE_FORMAT = 3
_INDEX_FILE = "index.json"
_ARCHIVE_FILE = "cases.zip"
_MODEL_FILE = "model.onnx"
_EXPANDED_SUFFIX = re.compile(r"_expanded(?:_ver\d+)?$")
_SAFE_NAME = re.compile(r"^test_[A-Za-z0-9_.\-]+$")
_BFLOAT16_RTOL = 2.0**-6  # two bfloat16 ULPs, as onnx's runner widens it

NodeValue: TypeAlias = "npt.NDArray[Any] | list[NodeValue] | None"
"""A case value: a tensor, a sequence (list) of values, or an empty optional (None)."""
DataSet: TypeAlias = "tuple[tuple[NodeValue, ...], tuple[NodeValue, ...]]"
"""One data set of a case: (inputs, expected outputs), both in graph order."""
Backend: TypeAlias = Callable[[onnx.ModelProto, list[Any]], Sequence[Any]]
"""``run(model, inputs) -> outputs``, inputs and outputs in graph order."""
AsyncBackend: TypeAlias = Callable[[onnx.ModelProto, list[Any]], Awaitable[Sequence[Any]]]
"""The awaitable form of :data:`Backend`."""


# --------------------------------------------------------------------------- cases


@dataclass(frozen=True, eq=False)
class NodeCase:
    """One onnx node test: a model, its data sets and the tolerances to judge it with.

    ``op_type`` is the operator the case was generated for; ``_expanded`` cases
    (the operator's function body inlined) keep the op_type of their base case.
    """

    name: str
    op_type: str
    domain: str
    model: onnx.ModelProto
    data_sets: tuple[DataSet, ...]
    rtol: float = DEFAULT_RTOL
    atol: float = DEFAULT_ATOL

    @property
    def inputs(self) -> tuple[NodeValue, ...]:
        """Inputs of the first data set (every generated case has at least one)."""
        return self.data_sets[0][0]

    @property
    def outputs(self) -> tuple[NodeValue, ...]:
        """Expected outputs of the first data set."""
        return self.data_sets[0][1]

    @property
    def expanded(self) -> bool:
        """True for a function-expansion variant (``..._expanded[_verN]``)."""
        return _EXPANDED_SUFFIX.search(self.name) is not None


@dataclass(frozen=True)
class _CaseMeta:
    """Index entry of one cached case: identity, tolerances, file counts and one checksum."""

    name: str
    op_type: str
    domain: str
    rtol: float
    atol: float
    random: bool
    data_set_count: int
    input_count: int
    output_count: int
    sha256: str

    def relpaths(self) -> list[str]:
        """The case's files, named as in onnx's data folder."""
        paths = [_MODEL_FILE]
        for k in range(self.data_set_count):
            paths += [_relpath(k, "input", i) for i in range(self.input_count)]
            paths += [_relpath(k, "output", i) for i in range(self.output_count)]
        return paths


@dataclass(frozen=True)
class _CaseRecord:
    """A case in serialized form: its index entry and the bytes of each file."""

    meta: _CaseMeta
    files: Mapping[str, bytes]


def is_random_case(case: NodeCase) -> bool:
    """A case is random when its expected outputs come from a random draw.

    That is every Bernoulli case, and a Dropout case in training mode whose ratio
    (input 1, default 0.5) is above zero. Inference-mode Dropout is the identity
    and stays in the suite.
    """
    if case.op_type == "Bernoulli":
        return True
    if case.op_type == "Dropout":
        return _dropout_is_random(case)
    return False


def _dropout_is_random(case: NodeCase) -> bool:
    """Training-mode Dropout with a positive ratio draws a random mask."""
    nodes = [node for node in case.model.graph.node if node.op_type == "Dropout"]
    if not nodes:
        return False
    feeds = dict(zip((vi.name for vi in case.model.graph.input), case.inputs, strict=False))
    training = _node_input_value(nodes[0], 2, feeds)
    if training is None or not bool(np.asarray(training)):
        return False
    ratio = _node_input_value(nodes[0], 1, feeds)
    return (0.5 if ratio is None else float(np.asarray(ratio))) > 0.0


def _node_input_value(node: onnx.NodeProto, index: int, feeds: Mapping[str, NodeValue]) -> NodeValue:
    """The fed value of a node's input, None when the input is absent or not a graph input."""
    if index >= len(node.input) or not node.input[index]:
        return None
    return feeds.get(node.input[index])


# --------------------------------------------------------------------------- encoding


def _relpath(data_set: int, kind: str, index: int) -> str:
    return f"test_data_set_{data_set}/{kind}_{index}.pb"


def _encode_value(value: Any, type_proto: onnx.TypeProto, name: str) -> bytes:
    """Serialize a value as the proto its graph type calls for (Tensor/Sequence/Optional)."""
    kind = type_proto.WhichOneof("value")
    if kind == "tensor_type":
        if isinstance(value, onnx.TensorProto):
            return bytes(value.SerializeToString())
        return bytes(numpy_helper.from_array(np.asarray(value), name).SerializeToString())
    if kind == "sequence_type":
        elem = _sequence_elem_type(type_proto.sequence_type.elem_type)
        return bytes(numpy_helper.from_list(list(value), name, elem).SerializeToString())
    if kind == "optional_type":
        # None must stay UNDEFINED (an empty optional); a value's kind is inferred from it.
        return bytes(numpy_helper.from_optional(value, name).SerializeToString())
    raise ValueError(f"unsupported value type {kind!r} for {name!r}")


def _sequence_elem_type(elem: onnx.TypeProto) -> int:
    kinds = {"sequence_type": onnx.SequenceProto.SEQUENCE, "map_type": onnx.SequenceProto.MAP}
    return kinds.get(elem.WhichOneof("value") or "", onnx.SequenceProto.TENSOR)


def _decode_value(data: bytes, type_proto: onnx.TypeProto) -> NodeValue:
    """Parse a value file according to its graph type; raise ValueError on bad data."""
    kind = type_proto.WhichOneof("value")
    try:
        if kind == "tensor_type":
            tensor = onnx.TensorProto()
            tensor.ParseFromString(data)
            return numpy_helper.to_array(tensor)
        if kind == "sequence_type":
            sequence = onnx.SequenceProto()
            sequence.ParseFromString(data)
            return numpy_helper.to_list(sequence)
        if kind == "optional_type":
            optional = onnx.OptionalProto()
            optional.ParseFromString(data)
            decoded: NodeValue = numpy_helper.to_optional(optional)
            return decoded
    except (DecodeError, TypeError) as exc:
        raise ValueError(f"cannot decode {kind} value: {exc}") from exc
    raise ValueError(f"unsupported value type {kind!r}")


def _decode_case(record: _CaseRecord) -> NodeCase:
    """Build a NodeCase from its serialized files; raise ValueError on bad data."""
    meta = record.meta
    model = onnx.ModelProto()
    try:
        model.ParseFromString(record.files[_MODEL_FILE])
    except DecodeError as exc:
        raise ValueError(f"{meta.name}: cannot decode model: {exc}") from exc
    data_sets = tuple(_decode_data_set(record, model.graph, k) for k in range(meta.data_set_count))
    return NodeCase(meta.name, meta.op_type, meta.domain, model, data_sets, meta.rtol, meta.atol)


def _decode_data_set(record: _CaseRecord, graph: onnx.GraphProto, k: int) -> DataSet:
    inputs = tuple(
        _decode_value(record.files[_relpath(k, "input", i)], vi.type) for i, vi in enumerate(graph.input)
    )
    outputs = tuple(
        _decode_value(record.files[_relpath(k, "output", i)], vi.type) for i, vi in enumerate(graph.output)
    )
    return inputs, outputs


def _case_digest(files: Mapping[str, bytes]) -> str:
    """SHA-256 over a case's files (names, lengths and bytes, in name order)."""
    digest = hashlib.sha256()
    for relpath in sorted(files):
        data = files[relpath]
        digest.update(f"{relpath}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


# --------------------------------------------------------------------------- generation


_Generated: TypeAlias = "tuple[_CaseRecord, NodeCase]"


def _generate_records() -> list[_Generated]:
    """Run onnx's node-case generators and serialize every case (random ones flagged)."""
    started = time.perf_counter()
    from onnx.backend.test.case.node import collect_testcases  # noqa: PLC0415 (slow import)

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        tests = list(collect_testcases())
    base_ops: dict[str, tuple[str, str]] = {}
    generated = [_record_from_test(test, base_ops) for test in tests]
    _log.info("generated %d onnx node cases in %.1f s", len(generated), time.perf_counter() - started)
    return generated


def _record_from_test(test: Any, base_ops: dict[str, tuple[str, str]]) -> _Generated:
    """Serialize one onnx TestCase and decode it back (so generated and cached cases are identical).

    ``base_ops`` maps base case names to (op_type, domain) for their ``_expanded`` variants.
    """
    model: onnx.ModelProto = test.model
    op_type, domain = _target_op(test.name, model, base_ops)
    files: dict[str, bytes] = {_MODEL_FILE: model.SerializeToString()}
    for k, (inputs, outputs) in enumerate(test.data_sets):
        for i, (value, vi) in enumerate(zip(inputs, model.graph.input, strict=True)):
            files[_relpath(k, "input", i)] = _encode_value(value, vi.type, vi.name)
        for i, (value, vi) in enumerate(zip(outputs, model.graph.output, strict=True)):
            files[_relpath(k, "output", i)] = _encode_value(value, vi.type, vi.name)
    meta = _CaseMeta(
        name=test.name,
        op_type=op_type,
        domain=domain,
        rtol=float(test.rtol),
        atol=float(test.atol),
        random=False,
        data_set_count=len(test.data_sets),
        input_count=len(model.graph.input),
        output_count=len(model.graph.output),
        sha256=_case_digest(files),
    )
    case = _decode_case(_CaseRecord(meta, files))
    return _CaseRecord(dataclasses.replace(meta, random=is_random_case(case)), files), case


def _target_op(name: str, model: onnx.ModelProto, base_ops: dict[str, tuple[str, str]]) -> tuple[str, str]:
    """The op a case tests: its single node, or for an expansion the op of its base case."""
    base = _EXPANDED_SUFFIX.sub("", name)
    if base != name and base in base_ops:
        return base_ops[base]
    node = model.graph.node[0]
    base_ops[name] = (node.op_type, node.domain)
    if base != name:
        _log.warning("expanded case %s has no base case; using its first node %s", name, node.op_type)
    return node.op_type, node.domain


# --------------------------------------------------------------------------- cache


def default_cache_dir() -> Path:
    """The node-case cache: ``$AIOPLUG_CACHE_DIR/node_cases``, else ``$XDG_CACHE_HOME`` or ``~/.cache``."""
    explicit = os.environ.get("AIOPLUG_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser() / "node_cases"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "aioplug" / "node_cases"


def _cache_root(cache_dir: str | os.PathLike[str] | None) -> Path:
    """Cache folder for this onnx version and cache format (the cache key)."""
    base = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return base / f"onnx-{onnx.__version__}-f{_CACHE_FORMAT}"


def _atomic_write(path: Path, data: bytes) -> None:
    """Write a file so readers see the old or the new content, never a partial one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _archive_bytes(records: Iterable[_CaseRecord]) -> bytes:
    """All case files in one uncompressed zip, named as in onnx's data folder (``<case>/<file>``)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for record in records:
            for relpath, data in record.files.items():
                archive.writestr(f"{record.meta.name}/{relpath}", data)
    return buffer.getvalue()


def _index_bytes(metas: Iterable[_CaseMeta]) -> bytes:
    document = {
        "format": _CACHE_FORMAT,
        "onnx_version": onnx.__version__,
        "archive": _ARCHIVE_FILE,
        "cases": [_meta_to_json(meta) for meta in metas],
    }
    return json.dumps(document, separators=(",", ":")).encode("utf-8")


def _meta_to_json(meta: _CaseMeta) -> dict[str, Any]:
    return {
        "name": meta.name,
        "op_type": meta.op_type,
        "domain": meta.domain,
        "rtol": meta.rtol,
        "atol": meta.atol,
        "random": meta.random,
        "data_sets": meta.data_set_count,
        "inputs": meta.input_count,
        "outputs": meta.output_count,
        "sha256": meta.sha256,
    }


def _meta_from_json(entry: Any) -> _CaseMeta:
    """Validate one index entry; raise ValueError when it is malformed or unsafe."""
    try:
        meta = _CaseMeta(
            name=str(entry["name"]),
            op_type=str(entry["op_type"]),
            domain=str(entry["domain"]),
            rtol=float(entry["rtol"]),
            atol=float(entry["atol"]),
            random=bool(entry["random"]),
            data_set_count=int(entry["data_sets"]),
            input_count=int(entry["inputs"]),
            output_count=int(entry["outputs"]),
            sha256=str(entry["sha256"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"malformed index entry: {exc}") from exc
    if not _SAFE_NAME.match(meta.name):
        raise ValueError(f"unsafe case name in index entry {meta.name!r}")
    return meta


def _read_index(root: Path) -> list[_CaseMeta] | None:
    """The cached index, or None when it is missing, corrupt or from another onnx version."""
    try:
        document = json.loads((root / _INDEX_FILE).read_text(encoding="utf-8"))
        if document.get("format") != _CACHE_FORMAT or document.get("onnx_version") != onnx.__version__:
            _log.info("node-case cache %s is stale; regenerating", root)
            return None
        return [_meta_from_json(entry) for entry in document["cases"]]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        _log.warning("node-case cache index %s is corrupt (%s); regenerating", root / _INDEX_FILE, exc)
        return None


def _read_case(archive: zipfile.ZipFile, meta: _CaseMeta) -> NodeCase:
    """Load one case from the archive, verifying its checksum; raise ValueError when corrupt."""
    files: dict[str, bytes] = {}
    for relpath in meta.relpaths():
        try:
            files[relpath] = archive.read(f"{meta.name}/{relpath}")
        except (KeyError, zipfile.BadZipFile, OSError, EOFError) as exc:
            raise ValueError(f"cannot read {meta.name}/{relpath}: {exc}") from exc
    if _case_digest(files) != meta.sha256:
        raise ValueError(f"checksum mismatch in case {meta.name}")
    return _decode_case(_CaseRecord(meta, files))


def _load_cached(root: Path, regex: re.Pattern[str] | None, include_random: bool) -> list[NodeCase] | None:
    """The selected cases from a valid cache, or None when any part of it is missing or corrupt."""
    metas = _read_index(root)
    if metas is None:
        return None
    wanted = [meta for meta in metas if _selected(meta, regex, include_random)]
    try:
        with zipfile.ZipFile(root / _ARCHIVE_FILE) as archive:
            return [_read_case(archive, meta) for meta in wanted]
    except FileNotFoundError:
        _log.warning("node-case cache %s has no archive; regenerating", root)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        _log.warning("node-case cache %s is corrupt (%s); regenerating", root, exc)
    return None


def _populate_cache(root: Path) -> list[_Generated]:
    """Generate every case and write the archive, then the index (each replaced atomically)."""
    generated = _generate_records()
    _atomic_write(root / _ARCHIVE_FILE, _archive_bytes(record for record, _ in generated))
    _atomic_write(root / _INDEX_FILE, _index_bytes(record.meta for record, _ in generated))
    _log.info("cached %d node cases in %s", len(generated), root)
    return generated


def _selected(meta: _CaseMeta, regex: re.Pattern[str] | None, include_random: bool) -> bool:
    return (include_random or not meta.random) and (regex is None or regex.search(meta.name) is not None)


def load_node_cases(
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    pattern: str | None = None,
    include_random: bool = False,
) -> list[NodeCase]:
    """Load onnx's node cases from the on-disk cache, generating it when missing or corrupt.

    ``pattern`` is a regular expression searched in case names. Random cases (see
    :func:`is_random_case`) are left out unless ``include_random`` is set. The cache
    (under ``onnx-<version>-f<format>``) is a JSON index with tolerances and SHA-256
    checksum per case plus one uncompressed zip of protobuf files in onnx's data-folder
    layout (``test_abs/model.onnx``, ``test_abs/test_data_set_0/input_0.pb``...);
    any unreadable part, or a case failing its checksum, is regenerated rather
    than reported.
    """
    regex = re.compile(pattern) if pattern is not None else None
    root = _cache_root(cache_dir)
    cached = _load_cached(root, regex, include_random)
    if cached is not None:
        return cached
    generated = _populate_cache(root)
    return [case for record, case in generated if _selected(record.meta, regex, include_random)]


# --------------------------------------------------------------------------- comparison


def compare_outputs(
    expected: Sequence[Any], actual: Sequence[Any], rtol: float = DEFAULT_RTOL, atol: float = DEFAULT_ATOL
) -> None:
    """Raise AssertionError unless ``actual`` matches ``expected`` under onnx's runner rules.

    Counts must match; each tensor must have the expected shape and dtype; floating
    values are compared with ``np.testing.assert_allclose`` semantics (NaN equals
    NaN; bfloat16 gets at least two ULPs of relative tolerance), everything else
    (integers, booleans, strings) exactly; sequences element by element; an empty
    optional (None) only matches None.
    """
    if not isinstance(actual, Sequence) or isinstance(actual, (str, bytes)):
        raise AssertionError(f"expected a sequence of outputs, got {_describe(actual)}")
    if len(actual) != len(expected):
        raise AssertionError(f"expected {len(expected)} output(s), got {len(actual)}")
    for index, (want, got) in enumerate(zip(expected, actual, strict=True)):
        _compare_value(want, got, f"output {index}", rtol, atol)


def _compare_value(expected: Any, actual: Any, where: str, rtol: float, atol: float) -> None:
    if expected is None:
        if actual is not None:
            raise AssertionError(f"{where}: expected an empty optional (None), got {_describe(actual)}")
        return
    if isinstance(expected, list):
        _compare_sequence(expected, actual, where, rtol, atol)
        return
    _compare_tensor(np.asarray(expected), actual, where, rtol, atol)


def _compare_sequence(expected: list[Any], actual: Any, where: str, rtol: float, atol: float) -> None:
    if not isinstance(actual, (list, tuple)):
        raise AssertionError(f"{where}: expected a sequence of {len(expected)} value(s), got {_describe(actual)}")
    if len(actual) != len(expected):
        raise AssertionError(f"{where}: expected a sequence of {len(expected)} value(s), got {len(actual)}")
    for index, (want, got) in enumerate(zip(expected, actual, strict=True)):
        _compare_value(want, got, f"{where}[{index}]", rtol, atol)


def _compare_tensor(expected: npt.NDArray[Any], actual: Any, where: str, rtol: float, atol: float) -> None:
    if isinstance(actual, np.generic):
        actual = np.asarray(actual)
    if not isinstance(actual, np.ndarray):
        raise AssertionError(f"{where}: expected a {expected.dtype} tensor, got {_describe(actual)}")
    if actual.shape != expected.shape:
        raise AssertionError(f"{where}: shape mismatch: expected {expected.shape}, got {actual.shape}")
    if _is_string(expected.dtype):
        if not _is_string(actual.dtype):
            raise AssertionError(f"{where}: dtype mismatch: expected strings, got {actual.dtype}")
        _assert_exact(expected.astype(object), actual.astype(object), where)
        return
    if actual.dtype != expected.dtype:
        raise AssertionError(f"{where}: dtype mismatch: expected {expected.dtype}, got {actual.dtype}")
    if _is_float(expected.dtype):
        _assert_close(expected, actual, where, rtol, atol)
    else:
        _assert_exact(_exact_view(expected), _exact_view(actual), where)


def _is_string(dtype: np.dtype[Any]) -> bool:
    return dtype.kind in "OUS"


def _is_float(dtype: np.dtype[Any]) -> bool:
    """True for numpy floats/complex and ml_dtypes floats (bfloat16, float8, float4)."""
    return dtype.kind in "fc" or (dtype.kind == "V" and dtype.name.startswith(("float", "bfloat")))


def _exact_view(array: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """ml_dtypes integers (int4, uint2, ...) as int64 so numpy can compare them."""
    if array.dtype.kind == "V" and array.dtype.name.startswith(("int", "uint")):
        return array.astype(np.int64)
    return array


def _assert_close(expected: npt.NDArray[Any], actual: npt.NDArray[Any], where: str, rtol: float, atol: float) -> None:
    if expected.dtype.kind == "V":
        if expected.dtype.name == "bfloat16":
            rtol = max(rtol, _BFLOAT16_RTOL)
        expected, actual = expected.astype(np.float32), actual.astype(np.float32)
    with np.errstate(all="ignore"):
        bad = ~np.isclose(actual, expected, rtol=rtol, atol=atol, equal_nan=True)
    if not bad.any():
        return
    summary = _mismatch_summary(bad, expected, actual)
    raise AssertionError(f"{where}: {summary} beyond rtol={rtol:g}, atol={atol:g}")


def _assert_exact(expected: npt.NDArray[Any], actual: npt.NDArray[Any], where: str) -> None:
    bad = np.asarray(expected != actual, dtype=bool).reshape(expected.shape)
    if bad.any():
        raise AssertionError(f"{where}: {_mismatch_summary(bad, expected, actual)} (exact comparison)")


def _mismatch_summary(bad: npt.NDArray[np.bool_], expected: npt.NDArray[Any], actual: npt.NDArray[Any]) -> str:
    """``'3 of 60 values differ, first at (0, 2): expected 1.5, got 1.7'``."""
    first = tuple(int(i) for i in np.argwhere(bad)[0])
    want, got = expected[first] if first else expected[()], actual[first] if first else actual[()]
    return (
        f"{int(bad.sum())} of {bad.size} values differ, first at {first}: "
        f"expected {_short(want)}, got {_short(got)}"
    )


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value.item() if isinstance(value, np.generic) and value.dtype.kind != "V" else value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"ndarray {value.dtype}{list(value.shape)}"
    return type(value).__name__


# --------------------------------------------------------------------------- running


class CaseStatus(enum.StrEnum):
    """Outcome of one case: right values, wrong values, or the backend raised."""

    PASSED = "passed"
    FAILED = "failed"
    ERRORED = "errored"


@dataclass(frozen=True)
class NodeCaseResult:
    """The outcome of running one case; ``message`` is empty when it passed."""

    name: str
    op_type: str
    status: CaseStatus
    message: str = ""
    duration_s: float = 0.0


@dataclass(frozen=True)
class NodeSuiteReport:
    """All case results of one suite run, with per-op-type totals and a text table."""

    results: tuple[NodeCaseResult, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> int:
        """Number of cases whose outputs matched."""
        return self._count(CaseStatus.PASSED)

    @property
    def failed(self) -> int:
        """Number of cases whose outputs were wrong."""
        return self._count(CaseStatus.FAILED)

    @property
    def errored(self) -> int:
        """Number of cases where the backend raised."""
        return self._count(CaseStatus.ERRORED)

    @property
    def total(self) -> int:
        """Number of cases run."""
        return len(self.results)

    def _count(self, status: CaseStatus) -> int:
        return sum(1 for result in self.results if result.status is status)

    def problems(self) -> list[NodeCaseResult]:
        """Results that did not pass, in run order."""
        return [result for result in self.results if result.status is not CaseStatus.PASSED]

    def by_op_type(self) -> dict[str, tuple[int, int, int]]:
        """``{op_type: (passed, failed, errored)}``, sorted by op_type."""
        counts: dict[str, list[int]] = {}
        slot = {CaseStatus.PASSED: 0, CaseStatus.FAILED: 1, CaseStatus.ERRORED: 2}
        for result in self.results:
            counts.setdefault(result.op_type, [0, 0, 0])[slot[result.status]] += 1
        return {op: (c[0], c[1], c[2]) for op, c in sorted(counts.items(), key=lambda kv: kv[0].lower())}

    def summary_line(self) -> str:
        """``'N passed, N failed, N errored of T'``."""
        return f"{self.passed} passed, {self.failed} failed, {self.errored} errored of {self.total}"

    def format_table(self, only_problems: bool = False) -> str:
        """The summary line, an aligned per-op-type table and the list of cases that did not pass.

        With ``only_problems`` the table keeps only op types with a failed or errored case.
        """
        rows = [
            (op, *counts)
            for op, counts in self.by_op_type().items()
            if not only_problems or counts[1] or counts[2]
        ]
        lines = [self.summary_line(), ""]
        lines += _format_op_rows(rows)
        problems = self.problems()
        if problems:
            lines += ["", "cases that did not pass:"]
            width = max(len(result.name) for result in problems)
            lines += [_format_problem(result, width) for result in problems]
        return "\n".join(lines)


def _format_op_rows(rows: Sequence[tuple[str, int, int, int]]) -> list[str]:
    width = max([len("op_type")] + [len(row[0]) for row in rows])
    header = f"{'op_type':<{width}}  {'passed':>6}  {'failed':>6}  {'errored':>7}  {'total':>5}"
    lines = [header, "-" * len(header)]
    for op, passed, failed, errored in rows:
        total = passed + failed + errored
        lines.append(f"{op:<{width}}  {passed:>6}  {failed:>6}  {errored:>7}  {total:>5}")
    return lines


def _format_problem(result: NodeCaseResult, width: int) -> str:
    first = next((line.strip() for line in result.message.splitlines() if line.strip()), "")
    if len(first) > 140:
        first = first[:137] + "..."
    return f"  {result.status.value.upper():<7}  {result.name:<{width}}  {first}"


ProgressCallback: TypeAlias = Callable[[int, int, NodeCaseResult], None]
"""``progress(done, total, result)`` called after each case."""


def _copy_value(value: Any) -> Any:
    """A private copy of an input, so a backend cannot alter the cached case."""
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, list):
        return [_copy_value(item) for item in value]
    return value


def _fresh_model(model: onnx.ModelProto) -> onnx.ModelProto:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    return copy


def _judge(case: NodeCase, k: int, expected: Sequence[Any], actual: Any) -> str | None:
    """The failure message for one data set's outputs, or None when they match."""
    try:
        compare_outputs(expected, actual, case.rtol, case.atol)
    except AssertionError as exc:
        return _prefixed(case, k, str(exc))
    except Exception as exc:  # noqa: BLE001 (malformed outputs must not stop the suite)
        return _prefixed(case, k, f"cannot compare outputs: {type(exc).__name__}: {exc}")
    return None


def _prefixed(case: NodeCase, k: int, message: str) -> str:
    return f"data set {k}: {message}" if len(case.data_sets) > 1 else message


def _error_message(case: NodeCase, k: int, exc: BaseException) -> str:
    return _prefixed(case, k, f"{type(exc).__name__}: {exc}")


def _result(case: NodeCase, status: CaseStatus, message: str, started: float) -> NodeCaseResult:
    return NodeCaseResult(case.name, case.op_type, status, message, time.perf_counter() - started)


def _run_case(case: NodeCase, run: Backend) -> NodeCaseResult:
    """Run every data set of a case through a sync backend and judge the outputs."""
    started = time.perf_counter()
    for k, (inputs, expected) in enumerate(case.data_sets):
        try:
            actual = run(_fresh_model(case.model), [_copy_value(v) for v in inputs])
            if inspect.isawaitable(actual):
                _close_awaitable(actual)
                raise TypeError("run() returned an awaitable; use run_node_suite_async for async backends")
        except Exception as exc:  # noqa: BLE001 (a raising backend must not stop the suite)
            return _result(case, CaseStatus.ERRORED, _error_message(case, k, exc), started)
        failure = _judge(case, k, expected, actual)
        if failure is not None:
            return _result(case, CaseStatus.FAILED, failure, started)
    return _result(case, CaseStatus.PASSED, "", started)


def _close_awaitable(awaitable: Awaitable[Any]) -> None:
    close = getattr(awaitable, "close", None)
    if callable(close):
        close()


async def _run_case_async(case: NodeCase, run: AsyncBackend | Backend) -> NodeCaseResult:
    """Run every data set of a case through a sync or async backend and judge the outputs."""
    started = time.perf_counter()
    for k, (inputs, expected) in enumerate(case.data_sets):
        try:
            actual: Any = run(_fresh_model(case.model), [_copy_value(v) for v in inputs])
            if inspect.isawaitable(actual):
                actual = await actual
        except Exception as exc:  # noqa: BLE001 (a raising backend must not stop the suite)
            return _result(case, CaseStatus.ERRORED, _error_message(case, k, exc), started)
        failure = _judge(case, k, expected, actual)
        if failure is not None:
            return _result(case, CaseStatus.FAILED, failure, started)
    return _result(case, CaseStatus.PASSED, "", started)


def run_node_suite(
    run: Backend | AsyncBackend,
    cases: Sequence[NodeCase] | None = None,
    *,
    progress: ProgressCallback | None = None,
) -> NodeSuiteReport:
    """Run cases (default: all of :func:`load_node_cases`) through ``run`` and report each.

    A case passes when every data set's outputs match, fails on wrong outputs, and
    errors when ``run`` raises; neither stops the suite. A coroutine function is
    driven with ``asyncio.run`` (so not from inside a running event loop; await
    :func:`run_node_suite_async` there).
    """
    if inspect.iscoroutinefunction(run):
        return asyncio.run(run_node_suite_async(run, cases, progress=progress))
    selected = list(cases) if cases is not None else load_node_cases()
    results: list[NodeCaseResult] = []
    for case in selected:
        results.append(_run_case(case, run))  # type: ignore[arg-type]
        _notify(progress, len(results), len(selected), results[-1])
    return NodeSuiteReport(tuple(results))


async def run_node_suite_async(
    run: AsyncBackend | Backend,
    cases: Sequence[NodeCase] | None = None,
    *,
    progress: ProgressCallback | None = None,
) -> NodeSuiteReport:
    """Run cases through an async (or sync) ``run``, one at a time, and report each.

    Same rules as :func:`run_node_suite`; loading the default cases happens in a
    worker thread so the event loop stays responsive.
    """
    selected = list(cases) if cases is not None else await asyncio.to_thread(load_node_cases)
    results: list[NodeCaseResult] = []
    for case in selected:
        results.append(await _run_case_async(case, run))
        _notify(progress, len(results), len(selected), results[-1])
    return NodeSuiteReport(tuple(results))


def _notify(progress: ProgressCallback | None, done: int, total: int, result: NodeCaseResult) -> None:
    """Call the progress callback; its own errors are logged, never fatal to the suite."""
    if progress is None:
        return
    try:
        progress(done, total, result)
    except Exception:  # noqa: BLE001
        _log.exception("progress callback raised")


# --------------------------------------------------------------------------- backends


def _feeds(model: onnx.ModelProto, inputs: Sequence[Any]) -> dict[str, Any]:
    """Map positional inputs to graph input names; raise ValueError on a count mismatch."""
    return {vi.name: value for vi, value in zip(model.graph.input, inputs, strict=True)}


def reference_backend() -> Backend:
    """A backend running each model with onnx's ``ReferenceEvaluator``."""
    from onnx.reference import ReferenceEvaluator  # noqa: PLC0415

    def run(model: onnx.ModelProto, inputs: list[Any]) -> Sequence[Any]:
        session = ReferenceEvaluator(model)
        return list(session.run(None, _feeds(model, inputs)))

    return run


def onnxruntime_backend(providers: Sequence[str] = ("CPUExecutionProvider",)) -> Backend:
    """A backend running each model in a fresh ONNX Runtime session; ImportError without onnxruntime.

    Empty optional inputs (None) are left out of the feeds, which is how ONNX
    Runtime represents them.
    """
    try:
        import onnxruntime as ort  # type: ignore[import-untyped,unused-ignore]  # noqa: PLC0415
    except ImportError as exc:
        raise ImportError(
            "onnxruntime_backend() needs the 'onnxruntime' package (pip install onnxruntime)"
        ) from exc
    ort.set_default_logger_severity(4)

    def run(model: onnx.ModelProto, inputs: list[Any]) -> Sequence[Any]:
        options = ort.SessionOptions()
        options.log_severity_level = 4
        session = ort.InferenceSession(model.SerializeToString(), sess_options=options, providers=list(providers))
        feeds = {name: value for name, value in _feeds(model, inputs).items() if value is not None}
        outputs: Sequence[Any] = session.run(None, feeds)
        return outputs

    return run


def device_backend(core: Any, device: str) -> AsyncBackend:
    """An async backend compiling each model on ``device`` of an open ``aioplug.Core``."""

    async def run(model: onnx.ModelProto, inputs: list[Any]) -> Sequence[Any]:
        compiled = await core.compile_model(model, device)
        try:
            return list((await compiled.infer(list(inputs))).to_tuple())
        finally:
            await compiled.aclose()

    return run


async def run_node_suite_on_device(
    device: str,
    cases: Sequence[NodeCase] | None = None,
    *,
    progress: ProgressCallback | None = None,
) -> NodeSuiteReport:
    """Runs the cases on an aioplug device, each model compiled and inferred through a Core."""
    import aioplug  # noqa: PLC0415

    async with aioplug.Core() as core:
        return await run_node_suite_async(device_backend(core, device), cases, progress=progress)


_BACKENDS: dict[str, Callable[[], Backend]] = {
    "reference": reference_backend,
    "onnxruntime": onnxruntime_backend,
    "ort": onnxruntime_backend,
}


def _backend_by_name(name: str) -> Backend:
    """Resolve a CLI backend name to a ``run`` callable; ValueError for an unknown name.

    This is the hook for ``--device NAME``: a runtime-backed resolver can map a
    device name to a backend here without touching the suite itself.
    """
    factory = _BACKENDS.get(name.lower())
    if factory is None:
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(sorted(_BACKENDS))}")
    return factory()


# --------------------------------------------------------------------------- CLI


class _StderrProgress:
    """Progress as one updating ``[ done/total] name`` line on a terminal, sparse lines otherwise."""

    def __init__(self) -> None:
        self._tty = sys.stderr.isatty()
        self._columns = shutil.get_terminal_size((100, 20)).columns

    def __call__(self, done: int, total: int, result: NodeCaseResult) -> None:
        line = f"[{done:>{len(str(total))}}/{total}] {result.name}"
        if self._tty:
            line = line[: self._columns - 1]
            sys.stderr.write("\r" + line.ljust(self._columns - 1))
            if done == total:
                sys.stderr.write("\r" + " " * (self._columns - 1) + "\r")
        elif done == total or done % 100 == 0:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m aioplug.testing.node_suite",
        description="Run onnx's backend node test cases against a backend.",
    )
    parser.add_argument("--backend", default="reference", help="reference or onnxruntime (default: reference)")
    parser.add_argument("--device", help="run on this aioplug device instead of a backend (e.g. CPU)")
    parser.add_argument("--pattern", help="regular expression searched in case names")
    parser.add_argument("--only-problems", action="store_true", help="table only op types with problems")
    parser.add_argument("--cache-dir", help=f"case cache (default: {default_cache_dir()})")
    parser.add_argument("--include-random", action="store_true", help="also run the random cases")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """CLI entry: run the suite, print the table; exit 0 when all pass, 1 otherwise, 2 on usage errors."""
    args = _parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        backend = None if args.device else _backend_by_name(args.backend)
        cases = load_node_cases(cache_dir=args.cache_dir, pattern=args.pattern, include_random=args.include_random)
    except (ValueError, ImportError, re.error) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    if not cases:
        sys.stderr.write("error: no case matches\n")
        return 2
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        if backend is None:
            report = asyncio.run(run_node_suite_on_device(args.device, cases, progress=_StderrProgress()))
        else:
            report = run_node_suite(backend, cases, progress=_StderrProgress())
    sys.stdout.write(report.format_table(only_problems=args.only_problems) + "\n")
    return 0 if report.passed == report.total else 1


if __name__ == "__main__":
    raise SystemExit(main())
