"""Recurrent layers: RNN, GRU and LSTM.

All directions share one plan: the input projection ``X @ W^T + biases`` is one batched
matmul over every time step (the reverse direction reads each sequence reversed within its
length), then a tight loop does one batched ``H @ R^T`` per step for both directions at once.
Steps past a batch entry's ``sequence_lens`` leave its state unchanged and write zeros to Y.
``layout=1`` (14+) puts the batch first in X, initial states and outputs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .._registry import Kernel, KernelNode, kernel
from ._common import FnKernel

__all__: list[str] = []

Act = Callable[[np.ndarray], np.ndarray]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * x) + 1.0)


def _make_act(name: str, alpha: float | None = None, beta: float | None = None) -> Act:
    """Returns the activation ``name`` with its alpha/beta (spec defaults when None)."""
    key = name.lower()
    if key == "sigmoid":
        return _sigmoid
    if key == "tanh":
        return np.tanh
    if key == "relu":
        return lambda x: np.maximum(x, 0)
    if key == "affine":
        a, b = 1.0 if alpha is None else alpha, 0.0 if beta is None else beta
        return lambda x: a * x + b
    if key == "leakyrelu":
        a = 0.01 if alpha is None else alpha
        return lambda x: np.where(x >= 0, x, a * x)
    if key == "thresholdedrelu":
        a = 1.0 if alpha is None else alpha
        return lambda x: np.where(x > a, x, 0).astype(x.dtype, copy=False)
    if key == "scaledtanh":
        a, b = 1.0 if alpha is None else alpha, 1.0 if beta is None else beta
        return lambda x: a * np.tanh(b * x)
    if key == "hardsigmoid":
        a, b = 0.2 if alpha is None else alpha, 0.5 if beta is None else beta
        return lambda x: np.clip(a * x + b, 0, 1)
    if key == "elu":
        a = 1.0 if alpha is None else alpha
        return lambda x: np.where(x >= 0, x, a * np.expm1(np.minimum(x, 0)))
    if key == "softsign":
        return lambda x: x / (1 + np.abs(x))
    if key == "softplus":
        return lambda x: np.logaddexp(x, 0).astype(x.dtype, copy=False)
    raise ValueError(f"unsupported recurrent activation {name!r}")


_USES_ALPHA = {"affine", "leakyrelu", "thresholdedrelu", "scaledtanh", "hardsigmoid", "elu"}
_USES_BETA = {"affine", "scaledtanh", "hardsigmoid"}


def _activations(node: KernelNode, defaults: Sequence[str], dirs: int) -> list[tuple[str, float | None, float | None]]:
    """Per-gate activation specs ``(name, alpha, beta)``, gate-major within each direction.

    alpha/beta values are consumed in order by the activations that take them.
    """
    names = list(node.attr("activations") or [])
    if not names:
        names = list(defaults) * dirs
    elif len(names) == len(defaults) and dirs == 2:
        names = names * 2
    alphas = [float(a) for a in node.attr("activation_alpha", []) or []]
    betas = [float(b) for b in node.attr("activation_beta", []) or []]
    specs: list[tuple[str, float | None, float | None]] = []
    for n in names:
        a = alphas.pop(0) if n.lower() in _USES_ALPHA and alphas else None
        b = betas.pop(0) if n.lower() in _USES_BETA and betas else None
        specs.append((n.lower(), a, b))
    return specs


class _DirActs:
    """Applies gate activation ``k`` of each direction to a ``(dirs, ...)`` array."""

    def __init__(self, specs: list[tuple[str, float | None, float | None]], per_dir: int,
                 dirs: int) -> None:
        self.funcs: list[list[Act]] = []
        for k in range(per_dir):
            gate = [specs[d * per_dir + k] for d in range(dirs)]
            if len(set(gate)) == 1:  # same activation for every direction: one call
                self.funcs.append([_make_act(*gate[0])])
            else:
                self.funcs.append([_make_act(*g) for g in gate])

    def __call__(self, k: int, x: np.ndarray) -> np.ndarray:
        fs = self.funcs[k]
        if len(fs) == 1:
            return fs[0](x)
        return np.stack([f(x[d]) for d, f in enumerate(fs)])


def _reverse_within(x: np.ndarray, lens: np.ndarray | None) -> np.ndarray:
    """Reverses axis 0 (time) of ``(seq, batch, ...)`` within each batch entry's length."""
    if lens is None:
        return x[::-1]
    t = np.arange(x.shape[0])[:, None]
    src = np.where(t < lens[None, :], lens[None, :] - 1 - t, t)
    return x[src, np.arange(x.shape[1])[None, :]]


class _Recurrent:
    """Shared plan of RNN/GRU/LSTM: argument decoding, projection, outputs, masks."""

    exec_type = "numpy"
    gates = 1
    defaults: tuple[str, ...] = ("Tanh",)

    def __init__(self, node: KernelNode) -> None:
        direction = str(node.attr("direction", "forward"))
        if direction not in ("forward", "reverse", "bidirectional"):
            raise ValueError(f"{node.op_type}: unknown direction {direction!r}")
        self.reverse = [False, True] if direction == "bidirectional" else [direction == "reverse"]
        self.dirs = len(self.reverse)
        self.hidden = int(node.attr("hidden_size", 0)) or None
        self.layout = int(node.attr("layout", 0))
        clip = node.attr("clip")
        self.clip = float(clip) if clip is not None else None
        self.act = _DirActs(_activations(node, self.defaults, self.dirs), len(self.defaults),
                            self.dirs)
        self.num_outputs = node.num_outputs

    def _clip(self, x: np.ndarray) -> np.ndarray:
        if self.clip is not None:
            np.clip(x, -self.clip, self.clip, out=x)
        return x

    def _setup(self, x: np.ndarray, w: np.ndarray,
               lens: np.ndarray | None, h0: np.ndarray | None, bias_x: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None, int]:
        """Returns (XW (dirs, seq, batch, G*h), H0 (dirs, batch, h), lens, mask, hidden)."""
        if self.layout == 1:
            x = x.transpose(1, 0, 2)
        seq, batch, _ = x.shape
        hidden = w.shape[1] // self.gates
        dt = x.dtype
        ln: np.ndarray | None = None
        mask: np.ndarray | None = None
        if lens is not None:
            ln = np.asarray(lens, dtype=np.int64).reshape(-1)
            if (ln >= seq).all():
                ln = None
            else:
                mask = (np.arange(seq)[:, None] < ln[None, :])[:, :, None]
        xs = np.stack([_reverse_within(x, ln) if r else x for r in self.reverse])
        xw = np.matmul(xs.reshape(self.dirs, seq * batch, -1), w.transpose(0, 2, 1))
        xw += bias_x[:, None, :]
        if h0 is None:
            h = np.zeros((self.dirs, batch, hidden), dtype=dt)
        else:
            h = np.array(h0.transpose(1, 0, 2) if self.layout == 1 else h0, dtype=dt)
        return xw.reshape(self.dirs, seq, batch, -1), h, ln, mask, hidden

    def _outputs(self, ys: np.ndarray, ln: np.ndarray | None, *states: np.ndarray) -> tuple[Any, ...]:
        """Re-reverses reverse directions and lays out Y and the final states."""
        if any(self.reverse):
            for d, r in enumerate(self.reverse):
                if r:
                    ys[d] = _reverse_within(ys[d], ln)
        if self.layout == 1:
            y = ys.transpose(2, 1, 0, 3)
            finals = tuple(s.transpose(1, 0, 2) for s in states)
        else:
            y = ys.transpose(1, 0, 2, 3)
            finals = states
        return (y, *finals)[: max(self.num_outputs, 1)]


class _RNNKernel(_Recurrent):
    defaults = ("Tanh",)

    def __call__(self, x: np.ndarray, w: np.ndarray, r: np.ndarray, b: np.ndarray | None = None,
                 lens: np.ndarray | None = None, h0: np.ndarray | None = None) -> tuple[Any, ...]:
        hs = w.shape[1]
        bias = (b[:, :hs] + b[:, hs:]).astype(x.dtype) if b is not None else np.zeros((self.dirs, hs), x.dtype)
        xw, h, ln, mask, _ = self._setup(x, w, lens, h0, bias)
        rt = r.transpose(0, 2, 1).astype(x.dtype, copy=False)
        seq = xw.shape[1]
        ys = np.zeros((self.dirs, seq, *h.shape[1:]), dtype=x.dtype)
        for t in range(seq):
            g = np.matmul(h, rt)
            g += xw[:, t]
            hn = self.act(0, self._clip(g))
            if mask is not None:
                hn = np.where(mask[t], hn, h)
                ys[:, t] = hn * mask[t]
            else:
                ys[:, t] = hn
            h = hn
        return self._outputs(ys, ln, h)


class _GRUKernel(_Recurrent):
    gates = 3
    defaults = ("Sigmoid", "Tanh")

    def __init__(self, node: KernelNode) -> None:
        super().__init__(node)
        self.lbr = bool(node.attr("linear_before_reset", 0))

    def __call__(self, x: np.ndarray, w: np.ndarray, r: np.ndarray, b: np.ndarray | None = None,
                 lens: np.ndarray | None = None, h0: np.ndarray | None = None) -> tuple[Any, ...]:
        hs = w.shape[1] // 3
        dt = x.dtype
        if b is None:
            b = np.zeros((self.dirs, 6 * hs), dtype=dt)
        wb, rb = b[:, : 3 * hs].astype(dt), b[:, 3 * hs:].astype(dt)
        bias = wb.copy()
        bias[:, : 2 * hs] += rb[:, : 2 * hs]
        if not self.lbr:
            bias[:, 2 * hs:] += rb[:, 2 * hs:]
        rbh = rb[:, None, 2 * hs:]
        xw, h, ln, mask, _ = self._setup(x, w, lens, h0, bias)
        rt = r.transpose(0, 2, 1).astype(dt, copy=False)
        rt_zr, rt_h = rt[:, :, : 2 * hs], rt[:, :, 2 * hs:]
        seq = xw.shape[1]
        ys = np.zeros((self.dirs, seq, *h.shape[1:]), dtype=dt)
        for t in range(seq):
            xt = xw[:, t]
            if self.lbr:
                hr = np.matmul(h, rt)
                zr = hr[..., : 2 * hs] + xt[..., : 2 * hs]
                z = self.act(0, self._clip(zr[..., :hs]))
                rg = self.act(0, self._clip(zr[..., hs:]))
                hh = xt[..., 2 * hs:] + rg * (hr[..., 2 * hs:] + rbh)
            else:
                zr = np.matmul(h, rt_zr) + xt[..., : 2 * hs]
                z = self.act(0, self._clip(zr[..., :hs]))
                rg = self.act(0, self._clip(zr[..., hs:]))
                hh = xt[..., 2 * hs:] + np.matmul(rg * h, rt_h)
            hh = self.act(1, self._clip(hh))
            hn = hh + z * (h - hh)
            if mask is not None:
                hn = np.where(mask[t], hn, h)
                ys[:, t] = hn * mask[t]
            else:
                ys[:, t] = hn
            h = hn
        return self._outputs(ys, ln, h)


class _LSTMKernel(_Recurrent):
    gates = 4
    defaults = ("Sigmoid", "Tanh", "Tanh")

    def __init__(self, node: KernelNode) -> None:
        super().__init__(node)
        self.input_forget = bool(node.attr("input_forget", 0))

    def __call__(self, x: np.ndarray, w: np.ndarray, r: np.ndarray, b: np.ndarray | None = None,
                 lens: np.ndarray | None = None, h0: np.ndarray | None = None,
                 c0: np.ndarray | None = None, p: np.ndarray | None = None) -> tuple[Any, ...]:
        hs = w.shape[1] // 4
        dt = x.dtype
        if b is not None:
            bias = (b[:, : 4 * hs] + b[:, 4 * hs:]).astype(dt)
        else:
            bias = np.zeros((self.dirs, 4 * hs), dtype=dt)
        xw, h, ln, mask, _ = self._setup(x, w, lens, h0, bias)
        if c0 is None:
            c = np.zeros_like(h)
        else:
            c = np.array(c0.transpose(1, 0, 2) if self.layout == 1 else c0, dtype=dt)
        pi = po = pf = None
        if p is not None:
            pp = p.astype(dt, copy=False)[:, None, :]
            pi, po, pf = pp[..., :hs], pp[..., hs: 2 * hs], pp[..., 2 * hs:]
        rt = r.transpose(0, 2, 1).astype(dt, copy=False)
        seq = xw.shape[1]
        ys = np.zeros((self.dirs, seq, *h.shape[1:]), dtype=dt)
        act = self.act
        for t in range(seq):
            g = np.matmul(h, rt)
            g += xw[:, t]
            gi, go, gf, gc = g[..., :hs], g[..., hs: 2 * hs], g[..., 2 * hs: 3 * hs], g[..., 3 * hs:]
            if pi is not None:
                gi += pi * c
                gf += pf * c
            i = act(0, self._clip(gi))
            f = 1 - i if self.input_forget else act(0, self._clip(gf))
            cn = f * c + i * act(1, self._clip(gc))
            if po is not None:
                go += po * cn
            hn = act(0, self._clip(go)) * act(2, cn)
            if mask is not None:
                m = mask[t]
                hn = np.where(m, hn, h)
                cn = np.where(m, cn, c)
                ys[:, t] = hn * m
            else:
                ys[:, t] = hn
            h, c = hn, cn
        return self._outputs(ys, ln, h, c)


def _wrap(layer: _Recurrent) -> Kernel:
    """Runs float16/bfloat16 layers in float32 and casts the outputs back."""

    def run(x: np.ndarray, *args: Any) -> tuple[Any, ...]:
        if x.dtype in (np.float32, np.float64):
            return layer(x, *args)  # type: ignore[operator, no-any-return]
        conv = [a.astype(np.float32) if isinstance(a, np.ndarray) and a.dtype.kind in "fV" else a
                for a in args]
        outs = layer(x.astype(np.float32), *conv)  # type: ignore[operator]
        return tuple(o.astype(x.dtype) for o in outs)

    return FnKernel(run)


@kernel("RNN", 1)
@kernel("RNN", 7)
@kernel("RNN", 14)
def rnn(node: KernelNode) -> Kernel:
    """RNN: ``Ht = f(Xt W^T + Ht-1 R^T + Wb + Rb)``; layout (14+)."""
    return _wrap(_RNNKernel(node))


@kernel("GRU", 1)
@kernel("GRU", 3)
@kernel("GRU", 7)
@kernel("GRU", 14)
def gru(node: KernelNode) -> Kernel:
    """GRU: gates z, r, h; ``linear_before_reset`` applies R_h before the reset gate."""
    return _wrap(_GRUKernel(node))


@kernel("LSTM", 1)
@kernel("LSTM", 7)
@kernel("LSTM", 14)
def lstm(node: KernelNode) -> Kernel:
    """LSTM: gates i, o, f, c; peepholes P, ``input_forget`` coupling, outputs Y, Y_h, Y_c."""
    return _wrap(_LSTMKernel(node))
