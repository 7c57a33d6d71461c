"""The synchronous inference request: tensors, validation, and the pipeline stages.

A :class:`SyncInferRequest` owns one set of input and output tensors and runs the three
stages of an inference serially: :meth:`~SyncInferRequest.preprocess` (gather inputs and
state), :meth:`~SyncInferRequest.compute` (the device's :meth:`~SyncInferRequest._infer` hole)
and :meth:`~SyncInferRequest.postprocess` (outputs, state, profiling). The asynchronous request
runs the same stages on its pipeline's executors.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from ._executors import CancelToken
from ._profiling import ProfilingInfo, ProfilingStatus
from ._remote import RemoteTensor
from ._results import InferResults
from ._state import VariableState
from .errors import InferError, InputError, PropertyError, RemoteTensorError, RequestBusy
from .model import Port, _fmt_shape

if TYPE_CHECKING:
    from ._compiled_model import CompiledModel

__all__ = ["SyncInferRequest", "check_tensor"]

_us = timedelta(microseconds=1)


def _describe(value: Any) -> str:
    return f"{np.dtype(value.dtype).name} of shape {_fmt_shape(tuple(value.shape))}"


def check_tensor(port: Port, value: Any, role: str, device: str) -> Any:
    """Returns ``value`` as a tensor for ``port``; raises InputError saying what was expected."""
    if value is None:
        if port.kind == "optional":
            return None
        raise InputError(
            f"{role} {port.name!r} got None; expected a numpy array of {port.describe()}"
        )
    if isinstance(value, RemoteTensor):
        if value.device_name.split(".")[0] != device.split(".")[0]:
            raise RemoteTensorError(
                f"{role} {port.name!r} got a remote tensor of {value.device_name}; this model "
                f"runs on {device}: copy it to the host with copy_to() first"
            )
    elif not isinstance(value, np.ndarray):
        if port.kind != "tensor":
            return value
        try:
            value = np.asarray(value, dtype=port.dtype)
        except (TypeError, ValueError) as exc:
            raise InputError(
                f"{role} {port.name!r} expects {port.describe()}; cannot convert "
                f"{type(value).__name__}: {exc}"
            ) from exc
    if port.dtype is not None and value.dtype != port.dtype:
        fix = f": convert with {port.name}.astype(np.{port.dtype.name})"
        raise InputError(
            f"{role} {port.name!r} expects {port.describe()}; got {_describe(value)}{fix}"
        )
    shape = port.shape
    if shape is not None and value.shape != shape:  # equal static shapes need no more checks
        got = value.shape
        if len(got) != len(shape) or any(
            isinstance(want, int) and want != have for want, have in zip(shape, got)
        ):
            raise InputError(
                f"{role} {port.name!r} expects {port.describe()}; got {_describe(value)}: "
                f"check the layout, or reshape to {_fmt_shape(shape)}"
            )
    return value


class SyncInferRequest:
    """Runs one inference at a time through preprocess, compute and postprocess.

    Devices subclass it and fill :meth:`_infer`: given the input values by graph input name
    and a :class:`~aioplug.plugin.CancelToken`, return the graph outputs in order.
    """

    def __init__(self, compiled_model: CompiledModel) -> None:
        self._compiled = compiled_model
        self._device = compiled_model.device_name
        self._in_ports = {p.name: p for p in compiled_model.inputs}
        self._out_ports = {p.name: p for p in compiled_model.outputs}
        self._output_names = tuple(p.name for p in compiled_model.outputs)
        self._output_index = {name: i for i, name in enumerate(self._output_names)}
        self._tensors: dict[str, Any] = {}
        self._out_targets: dict[str, Any] = {}
        self._outputs: dict[str, Any] = {}
        self._states = {
            name: VariableState(name, initial)
            for name, initial in compiled_model._state_initials.items()
        }
        self._feed: dict[str, Any] = {}
        self._raw: Sequence[Any] = ()
        self._results: InferResults | None = None
        self._node_records: list[ProfilingInfo] = []
        self._profiling: list[ProfilingInfo] = []
        self._times = [0.0, 0.0, 0.0, 0.0]
        self._cpu_compute = 0.0
        self._busy = threading.Lock()
        self.token = CancelToken()

    # -- ports and tensors ---------------------------------------------------------------
    @property
    def compiled_model(self) -> CompiledModel:
        """The compiled model this request belongs to."""
        return self._compiled

    @property
    def inputs(self) -> tuple[Port, ...]:
        """Input ports."""
        return self._compiled.inputs

    @property
    def outputs(self) -> tuple[Port, ...]:
        """Output ports."""
        return self._compiled.outputs

    def _port(self, key: str | Port) -> tuple[Port, bool]:
        name = key.name if isinstance(key, Port) else key
        if not isinstance(name, str):
            raise InputError(f"tensor key must be a name or a Port, got {key!r}")
        port = self._in_ports.get(name)
        if port is not None:
            return port, True
        port = self._out_ports.get(name)
        if port is not None:
            return port, False
        ins = ", ".join(repr(n) for n in self._in_ports)
        outs = ", ".join(repr(n) for n in self._out_ports)
        raise InputError(f"no input or output {name!r}; inputs: {ins}; outputs: {outs}")

    def set_tensor(self, key: str | Port, tensor: Any) -> None:
        """Sets the tensor of an input (used as is, no copy) or a preallocated output."""
        port, is_input = self._port(key)
        role = "input" if is_input else "output"
        value = check_tensor(port, tensor, role, self._device)
        if is_input:
            self._tensors[port.name] = value
        else:
            self._out_targets[port.name] = value

    def get_tensor(self, key: str | Port) -> Any:
        """Returns the tensor of an input or output, allocating a static one on first use."""
        port, is_input = self._port(key)
        if is_input:
            value = self._tensors.get(port.name)
            if value is None:
                value = self._tensors[port.name] = self._allocate(port)
            return value
        value = self._outputs.get(port.name)
        if value is None:
            value = self._out_targets.get(port.name)
        if value is None:
            value = self._outputs[port.name] = self._allocate(port)
        return value

    def get_input_tensor(self, index: int = 0) -> Any:
        """Returns the tensor of input ``index``."""
        return self.get_tensor(self._compiled.input(index).name)

    def get_output_tensor(self, index: int = 0) -> Any:
        """Returns the tensor of output ``index``."""
        return self.get_tensor(self._compiled.output(index).name)

    @staticmethod
    def _allocate(port: Port) -> np.ndarray:
        dims = tuple(d if isinstance(d, int) else 0 for d in (port.shape or ()))
        return np.zeros(dims, dtype=port.dtype or np.float32)

    def set_inputs(self, inputs: Any) -> None:
        """Sets inputs from ``{name: array}``, a list in input order, or one array."""
        if isinstance(inputs, Mapping):
            ports = self._in_ports
            device = self._device
            tensors = self._tensors
            for key, value in inputs.items():
                if isinstance(key, int) and not isinstance(key, bool):
                    port = self._compiled.input(key)
                else:
                    found = ports.get(key.name if isinstance(key, Port) else key)
                    if found is None:
                        self._port(key)  # raises the detailed error
                        raise InputError(f"{key!r} is an output, not an input")
                    port = found
                tensors[port.name] = check_tensor(port, value, "input", device)
        elif isinstance(inputs, (list, tuple)):
            ports_in_order = self._compiled.inputs
            if len(inputs) != len(ports_in_order):
                raise InputError(
                    f"got {len(inputs)} inputs; the model has {len(ports_in_order)}: "
                    + ", ".join(repr(p.name) for p in ports_in_order)
                )
            for port, value in zip(ports_in_order, inputs):
                self._tensors[port.name] = check_tensor(port, value, "input", self._device)
        else:
            port = self._compiled.input()
            self._tensors[port.name] = check_tensor(port, inputs, "input", self._device)

    # -- state and profiling -------------------------------------------------------------
    def query_state(self) -> list[VariableState]:
        """Returns the request's variable states (empty for a stateless model)."""
        return list(self._states.values())

    def reset_state(self) -> None:
        """Resets every variable state to its initial value."""
        for state in self._states.values():
            state.reset()

    def get_profiling_info(self) -> list[ProfilingInfo]:
        """Returns the profiling records of the last inference (needs ``PERF_COUNT``)."""
        if not self._compiled._perf_count:
            raise PropertyError(
                "profiling is off for this compiled model: compile it with {'PERF_COUNT': True}"
            )
        return list(self._profiling)

    def record_node(
        self,
        name: str,
        node_type: str,
        exec_type: str,
        real_s: float,
        cpu_s: float,
        status: ProfilingStatus = ProfilingStatus.EXECUTED,
    ) -> None:
        """Adds one node's profiling record to the current run (devices call this)."""
        self._node_records.append(
            ProfilingInfo(
                name, node_type, exec_type, timedelta(seconds=real_s), timedelta(seconds=cpu_s),
                status,
            )
        )

    def extend_profiling(self, records: Sequence[ProfilingInfo]) -> None:
        """Adds records of another request (a virtual device's sub-request) to the current run."""
        self._node_records.extend(records)

    @property
    def profiling_enabled(self) -> bool:
        """True when the device should record per-node profiling."""
        return self._compiled._perf_count

    @property
    def stage_times(self) -> dict[str, float]:
        """Seconds spent in each stage of the last inference."""
        t = self._times
        return {"preprocess": t[0], "compute": t[1], "postprocess": t[2]}

    @property
    def results(self) -> InferResults | None:
        """The outputs of the last finished inference."""
        return self._results

    # -- the stages ----------------------------------------------------------------------
    def preprocess(self) -> None:
        """Gathers the input values (and state) for compute."""
        start = time.perf_counter()
        feed: dict[str, Any] = {}
        tensors = self._tensors
        states = self._states
        self._node_records = []
        for port in self._compiled._graph_inputs:
            name = port.name
            state = states.get(name)
            if state is not None:
                feed[name] = state.get_state()
                continue
            value = tensors.get(name)
            if value is None and name not in tensors:
                if port.is_dynamic:
                    raise InputError(
                        f"input {name!r} ({port.describe()}) was not set: pass it to infer() "
                        "or set_tensor()"
                    )
                value = self.get_tensor(name)
            if isinstance(value, RemoteTensor):
                value = self._read_remote(value)
            feed[name] = value
        self._feed = feed
        self._times[0] = time.perf_counter() - start

    def compute(self) -> None:
        """Runs the device's compute on the gathered inputs."""
        start = time.perf_counter()
        if self._compiled._perf_count:
            cpu = time.thread_time()
            raw = self._infer(self._feed, self.token)
            self._cpu_compute = time.thread_time() - cpu
        else:
            raw = self._infer(self._feed, self.token)
        self._store_raw(raw, start)

    async def compute_async(self) -> None:
        """Awaits the device's :meth:`_infer_async` on the gathered inputs (virtual devices)."""
        start = time.perf_counter()
        self._cpu_compute = 0.0
        raw = await self._infer_async(self._feed, self.token)
        self._store_raw(raw, start)

    def _store_raw(self, raw: Sequence[Any], start: float) -> None:
        if len(raw) != len(self._compiled._graph_outputs):
            raise InferError(
                f"{self._device} returned {len(raw)} outputs; the model has "
                f"{len(self._compiled._graph_outputs)}"
            )
        self._raw = raw
        self._times[1] = time.perf_counter() - start

    def postprocess(self) -> None:
        """Stores outputs and state, assembles results and profiling."""
        start = time.perf_counter()
        compiled = self._compiled
        raw = self._raw
        self._raw = ()
        self._feed = {}
        index = compiled._graph_output_index
        for state_in, state_out in compiled._state_map.items():
            self._states[state_in]._update(raw[index[state_out]])
        values = []
        for port in compiled.outputs:
            value = raw[index[port.name]]
            target = self._out_targets.get(port.name)
            if target is not None:
                value = self._write_target(port, target, value)
            values.append(value)
        self._outputs = dict(zip(self._output_names, values))
        self._results = InferResults(self._output_names, values, self._output_index)
        self._times[2] = time.perf_counter() - start
        if compiled._perf_count:
            self._profiling = self._assemble_profiling()

    def _write_target(self, port: Port, target: Any, value: Any) -> Any:
        value = np.asarray(value)
        if tuple(target.shape) != value.shape:
            raise InputError(
                f"output {port.name!r} is {_describe(value)}, but the tensor set for it is "
                f"{_describe(target)}: set a tensor of that shape or none"
            )
        if isinstance(target, RemoteTensor):
            np.copyto(self._write_remote(target), value)
        else:
            np.copyto(target, value)
        return target

    def _assemble_profiling(self) -> list[ProfilingInfo]:
        t = self._times
        records = [
            ProfilingInfo(
                "input preprocessing", "Preprocess", "host",
                timedelta(seconds=t[0]), timedelta(seconds=t[0]),
            )
        ]
        records.extend(self._node_records)
        if not self._node_records:
            records.append(
                ProfilingInfo(
                    "execution time", "Compute", self._device,
                    timedelta(seconds=t[1]), timedelta(seconds=self._cpu_compute),
                )
            )
        records.append(
            ProfilingInfo(
                "output postprocessing", "Postprocess", "host",
                timedelta(seconds=t[2]), timedelta(seconds=t[2]), ProfilingStatus.EXECUTED,
            )
        )
        return records

    # -- running -------------------------------------------------------------------------
    def infer(self, inputs: Any = None) -> InferResults:
        """Runs one inference on the calling thread and returns its outputs."""
        if not self._busy.acquire(blocking=False):
            raise RequestBusy("the request is already running; wait for it or use another")
        try:
            if inputs is not None:
                self.set_inputs(inputs)
            self.token = CancelToken()
            self.preprocess()
            self.compute()
            self.postprocess()
            assert self._results is not None
            return self._results
        finally:
            self._feed = {}
            self._raw = ()
            self._busy.release()

    def cancel(self) -> None:
        """Asks the running inference to stop at the next node boundary."""
        self.token.cancel()

    # -- holes for devices ---------------------------------------------------------------
    def _infer(self, feed: dict[str, Any], token: CancelToken) -> Sequence[Any]:
        """Computes the graph outputs, in order, from ``feed`` (by graph input name)."""
        raise NotImplementedError

    async def _infer_async(self, feed: dict[str, Any], token: CancelToken) -> Sequence[Any]:
        """Like :meth:`_infer`, awaited on the loop: virtual devices await other devices here.

        The device handles ``token`` itself (cancelling the requests it awaits).
        """
        raise NotImplementedError(f"{self._device} computes through _infer, not _infer_async")

    def _read_remote(self, tensor: RemoteTensor) -> np.ndarray:
        """Returns the device memory of an input remote tensor (no copy)."""
        return tensor._device_array()

    def _write_remote(self, tensor: RemoteTensor) -> np.ndarray:
        """Returns the device memory an output is written into."""
        return tensor._device_array()
