"""The batch axis: which models BATCH can batch, and the model it compiles on the device.

BATCH stacks requests along axis 0 of every input and splits every output along axis 0, so
each input's first dimension must be symbolic (``'N'``), unknown, or 1, and each output's
first dimension must follow it. A model whose batch dimension is 1 is compiled on the device
as a copy whose first input dimensions are symbolic; shape inference on that copy then shows
whether every output still follows the batch (a Reshape to a constant shape would pin it).
"""

from __future__ import annotations

from collections.abc import Iterable

import onnx

from aioplug.plugin import Model, ModelError, Port, read_model

__all__ = ["BatchLayout", "batch_layout"]

SYMBOL = "batch"
"""The symbolic batch dimension given to inputs whose batch dimension is 1."""


class BatchLayout:
    """How a model is batched: the model to compile on the device, and how to group requests.

    ``static``: every input has a fixed shape (batch 1), so each request is one row and any
    requests can share a batch. ``uniform``: every input has fixed dimensions after the first
    and a dtype, so the inputs' checks already make any requests stackable; only their rows
    differ. Otherwise requests are grouped by their trailing shapes (and dtypes).
    """

    __slots__ = ("model", "static", "uniform", "typed")

    def __init__(self, model: Model, static: bool, uniform: bool, typed: bool) -> None:
        self.model = model
        self.static = static
        self.uniform = uniform
        self.typed = typed


def _problem_of_input(port: Port) -> str | None:
    if port.kind != "tensor" or port.shape is None:
        kind = port.kind if port.kind != "tensor" else "tensor of unknown rank"
        return f"input {port.name!r} is a {kind}: it has no batch axis to stack requests along"
    if not port.shape:
        return f"input {port.name!r} is a scalar (rank 0): it has no batch axis"
    first = port.shape[0]
    if isinstance(first, int) and first != 1:
        return (
            f"input {port.name!r} ({port.describe()}) has a fixed first dimension {first}; "
            "expected 1 or a symbolic batch dimension such as 'N'"
        )
    return None


def _problem_of_output(port: Port, relaxed: bool) -> str | None:
    if port.kind != "tensor":
        return f"output {port.name!r} is a {port.kind}: it cannot be split along a batch axis"
    if port.shape is None:
        return None  # unknown rank: checked at run time
    if not port.shape:
        return f"output {port.name!r} is a scalar (rank 0): it does not follow the batch"
    first = port.shape[0]
    if isinstance(first, int) and not (first == 1 and not relaxed):
        if relaxed:
            return (
                f"output {port.name!r} keeps a fixed first dimension {first} when the batch "
                "dimension is symbolic: a node of the model fixes it (a Reshape to a constant "
                "shape, say), so it does not follow the batch"
            )
        return (
            f"output {port.name!r} ({port.describe()}) has a fixed first dimension {first}: it "
            "does not follow the batch (expected the inputs' symbolic batch dimension)"
        )
    return None


def _refuse(device: str, model: Model, problems: Iterable[str]) -> ModelError:
    listed = "; ".join(problems)
    return ModelError(
        f"{device} cannot batch model {model.name!r}: {listed}. {device} stacks requests along "
        "axis 0 of every input and output: export the model with a batch dimension of 1 or a "
        "symbolic one, or compile it on the device itself"
    )


def batch_layout(model: Model, device: str = "BATCH") -> BatchLayout:
    """Checks that ``model`` has a batch axis; returns the model to compile on the device.

    Raises ModelError naming every port without a batch axis and what was expected.
    """
    problems = [p for p in (_problem_of_input(port) for port in model.inputs) if p]
    pinned = [
        port.name
        for port in model.inputs
        if port.shape and isinstance(port.shape[0], int)  # == 1 once the checks passed
    ]
    all_pinned = len(pinned) == len(model.inputs)
    # an output of batch 1 is fine only when every input is pinned to 1 as well
    problems += [
        p for p in (_problem_of_output(port, relaxed=not all_pinned) for port in model.outputs) if p
    ]
    if problems:
        raise _refuse(device, model, problems)
    static = all(not port.is_dynamic for port in model.inputs)
    typed = all(port.dtype is not None for port in model.inputs)
    uniform = typed and all(
        all(isinstance(d, int) for d in (port.shape or ())[1:]) for port in model.inputs
    )
    if not pinned:
        return BatchLayout(model, static, uniform, typed)
    relaxed = _relax(model, pinned, device)
    problems = [p for p in (_problem_of_output(port, relaxed=True) for port in relaxed.outputs) if p]
    if problems:
        raise _refuse(device, model, problems)
    return BatchLayout(relaxed, static, uniform, typed)


def _relax(model: Model, pinned: list[str], device: str) -> Model:
    """A copy of ``model`` whose pinned inputs (batch 1) get a symbolic first dimension."""
    proto = onnx.ModelProto()
    proto.CopyFrom(model.proto)
    graph = proto.graph
    symbol = next(
        (
            str(port.shape[0])
            for port in model.inputs
            if port.shape and isinstance(port.shape[0], str) and port.shape[0]
        ),
        SYMBOL,
    )
    names = set(pinned)
    for vi in graph.input:
        if vi.name in names:
            dim = vi.type.tensor_type.shape.dim[0]
            dim.Clear()
            dim.dim_param = symbol
    for vi in graph.output:
        tensor = vi.type.tensor_type
        if vi.type.HasField("tensor_type") and tensor.HasField("shape") and tensor.shape.dim:
            tensor.shape.dim[0].Clear()  # unknown: shape inference says what it becomes
    del graph.value_info[:]
    try:
        return read_model(proto)
    except ModelError as exc:
        raise ModelError(
            f"{device} cannot batch model {model.name!r}: with a symbolic batch dimension "
            f"its shapes do not infer ({exc}); export it with a dynamic batch dimension"
        ) from exc
