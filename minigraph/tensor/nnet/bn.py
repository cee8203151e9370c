"""Batch normalization (Ioffe & Szegedy 2015) with Theano's API: ``T.nnet.bn``.

In training mode batch normalization is ONE node of the user's graph, a ``BatchNormTrain``
op: a composite op (``OpFromGraph``) whose inner graph is made of primitive ops,

    mean   = mean(x, axes)                      (keepdims)
    var    = mean((x - mean) ** 2, axes)        (two passes: exact for large offsets)
    invstd = 1 / sqrt(var + epsilon)
    out    = (x - mean) * gamma * invstd + beta

and whose outputs are ``out``, ``mean`` and ``invstd`` (plus the new running statistics).
With ``impl="autodiff"`` (the default) its gradient is not written anywhere: the general
autodiff differentiates the inner graph, so the backward graph reaches ``x`` through the
mean and variance nodes by the chain rule.  With ``impl="closed_form"`` the gradient of
``out`` is the paper's formula, built as explicit nodes from the op's own ``mean`` and
``invstd`` outputs::

    dx = gamma * invstd / m * (m * dy - sum(dy) - xhat * sum(dy * xhat))
    dgamma = sum(dy * xhat),  dbeta = sum(dy)

Both give the same numbers; comparing their graphs is the point of docs/batchnorm.md.

Conventions (Theano's code, which this module follows where its docs differ):
``axes`` is "per-activation" (0,), "spatial" (0, 2, 3, ...) or a tuple of non-negative
axes; gamma, beta and the running statistics either have the input's ndim (length 1 on
the normalized axes) or exactly the non-normalized axes, all in the same layout; ``mean``
and ``invstd`` come back in that layout; epsilon must be at least 1e-5.  The running
variance is updated with the unbiased batch variance, var * m / (m - 1) (m: elements
reduced per channel); for m = 1, where that is undefined, the biased variance (0) is used.
Parameters and running statistics are cast to the input's dtype.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from minigraph.graph.basic import Variable
from minigraph.graph.opfromgraph import OpFromGraph
from minigraph.graph.type import TensorType
from minigraph.tensor import math as M
from minigraph.tensor.basic import as_tensor_variable, build_error, constant
from minigraph.tensor.elemwise import DimShuffle
from minigraph.tensor.shape_ops import shape_i

__all__ = ["BatchNormTrain", "batch_normalization_train", "batch_normalization_test", "batch_normalization"]

#: the smallest epsilon accepted (the value cuDNN and Theano require)
MIN_EPSILON = 1e-5


# --- layout helpers ----------------------------------------------------------------------------

def _to_full(p, axes: tuple, ndim: int):
    """A parameter in the reduced layout (the non-normalized axes) as a full-ndim tensor
    with length-1 normalized axes; full-layout parameters are returned as they are."""
    return p if p.ndim == ndim else M.expand_reduced(p, axes, ndim)


def _to_layout(full, axes: tuple, full_layout: bool):
    """A keepdims statistic in the parameters' layout (the normalized axes dropped if reduced)."""
    if full_layout:
        return full
    kept = tuple(d for d in range(full.ndim) if d not in axes)
    return DimShuffle(kept, full.ndim)(full)


def _count(x, axes: tuple, dtype: str):
    """m: the number of elements reduced per channel, as a scalar of ``dtype``."""
    lengths = [shape_i(x, a) for a in axes]
    m = lengths[0] if len(lengths) == 1 else M.mul(*lengths)
    return M.cast(m, dtype)


# --- the training op ---------------------------------------------------------------------------

@dataclass(frozen=True)
class BatchNormTrain(OpFromGraph):
    """Batch normalization with batch statistics, as one node defined by an inner graph.

    Inputs: x, gamma, beta (and running_mean, running_var when ``running``).  Outputs: out,
    mean, invstd (and new_running_mean, new_running_var).

    Equality: a frozen dataclass, equal and hashable by its parameters (axes, epsilon,
    running_average_factor, impl, running, dtype, ndim, full_layout); the inner graph is a
    function of exactly these parameters and is built lazily, so identical batch-norm nodes
    merge and an op needs no graph to be compared.
    """

    axes: tuple
    epsilon: float
    running_average_factor: float
    impl: str
    running: bool
    dtype: str
    ndim: int
    full_layout: bool

    def __str__(self) -> str:
        shown = f"axes={','.join(map(str, self.axes))}, epsilon={self.epsilon:g}"
        if self.running:
            shown += f", running_average_factor={self.running_average_factor:g}"
        if self.impl != "autodiff":
            shown += f", impl={self.impl}"
        return f"batch_norm_train{{{shown}}}"

    def params(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @property
    def name(self) -> str:  # type: ignore[override]
        return "batch_norm_train"

    def param_type(self) -> TensorType:
        """The inner type of gamma, beta and the running statistics."""
        if self.full_layout:
            shape = tuple(1 if d in self.axes else None for d in range(self.ndim))
        else:
            shape = (None,) * (self.ndim - len(self.axes))
        return TensorType(self.dtype, shape)

    @cached_property
    def _graph(self) -> tuple[list[Variable], list[Variable]]:
        axes, dtype = self.axes, self.dtype
        x = TensorType(dtype, (None,) * self.ndim).make_variable("x")
        ptype = self.param_type()
        gamma, beta = ptype.make_variable("gamma"), ptype.make_variable("beta")
        inputs = [x, gamma, beta]
        mean = M.mean(x, axes, keepdims=True)
        mean.name = "mean"
        centered = M.sub(x, mean)
        centered.name = "x_centered"
        # two passes: the deviations are formed before squaring, so a large common offset
        # cancels exactly instead of swamping E[x^2] - E[x]^2
        var = M.mean(M.sqr(centered), axes, keepdims=True)
        var.name = "var"
        invstd = M.true_div(1, M.sqrt(M.add(var, constant(self.epsilon, dtype=dtype))))
        invstd.name = "invstd"
        out = M.add(M.mul(centered, _to_full(gamma, axes, self.ndim), invstd), _to_full(beta, axes, self.ndim))
        out.name = "out"
        outputs = [out, _to_layout(mean, axes, self.full_layout), _to_layout(invstd, axes, self.full_layout)]
        if self.running:
            running_mean, running_var = ptype.make_variable("running_mean"), ptype.make_variable("running_var")
            inputs += [running_mean, running_var]
            f = self.running_average_factor
            m = _count(x, axes, dtype)
            # unbiased variance m / (m - 1); for m = 1 (undefined) keep the biased one (0)
            correction = M.true_div(m, M.maximum(M.sub(m, 1), 1))
            new_mean = M.add(M.mul(running_mean, 1 - f), M.mul(outputs[1], f))
            new_var = M.add(M.mul(running_var, 1 - f),
                            M.mul(_to_layout(var, axes, self.full_layout), correction, f))
            new_mean.name, new_var.name = "new_running_mean", "new_running_var"
            outputs += [new_mean, new_var]
        return inputs, outputs

    def inner_graph(self):
        """The inner graph, built once from the parameters."""
        return self._graph

    def grad(self, inputs, outputs, output_grads):
        """impl="autodiff": the inner graph differentiated by the autodiff.  impl="closed_form":
        the paper's formula for the gradient of ``out``; gradients that reach the statistics
        outputs (rare) still go through the inner graph's autodiff."""
        if self.impl == "autodiff" or output_grads[0] is None:
            return super().grad(inputs, outputs, output_grads)
        rest = [None] + list(output_grads[1:])
        grads = super().grad(inputs, outputs, rest) if any(g is not None for g in rest) else [None] * len(inputs)
        closed = self.closed_form_grad(inputs, outputs, output_grads[0])
        return [a if b is None else b if a is None else M.add(a, b)
                for a, b in zip(grads, closed + [None] * (len(inputs) - 3))]

    def closed_form_grad(self, inputs, outputs, dy) -> list:
        """[dx, dgamma, dbeta] from the paper's formulas, using the node's mean and invstd."""
        axes, ndim = self.axes, self.ndim
        x, gamma = inputs[0], inputs[1]
        mean, invstd = _to_full(outputs[1], axes, ndim), _to_full(outputs[2], axes, ndim)
        m = _count(x, axes, self.dtype)
        xhat = M.mul(M.sub(x, mean), invstd)
        xhat.name = "xhat"
        sum_dy = M.sum(dy, axes, keepdims=True)
        sum_dy_xhat = M.sum(M.mul(dy, xhat), axes, keepdims=True)
        dx = M.mul(M.true_div(M.mul(_to_full(gamma, axes, ndim), invstd), m),
                   M.sub(M.sub(M.mul(m, dy), sum_dy), M.mul(xhat, sum_dy_xhat)))
        dgamma = _to_layout(sum_dy_xhat, axes, self.full_layout)
        dbeta = _to_layout(sum_dy, axes, self.full_layout)
        return [dx, dgamma, dbeta]


# --- argument checking -------------------------------------------------------------------------

class _BadArgument(ValueError):
    """Raised by the checks below; the public functions re-raise it with build_error (the
    function's name, the inputs' types and the user's line)."""


def _reraise(where: str, args, e: Exception):
    shown = [v for v in args if isinstance(v, Variable)]
    return build_error(where, shown, str(e), ValueError)


def _normalize_axes(axes, ndim: int) -> tuple:
    if isinstance(axes, str):
        if axes == "per-activation":
            return (0,)
        if axes == "spatial":
            return (0,) + tuple(range(2, ndim))
        raise _BadArgument(f"invalid axes {axes!r} (use 'per-activation', 'spatial' or a tuple)")
    if isinstance(axes, (int, np.integer)):
        axes = (axes,)
    if not isinstance(axes, (tuple, list, np.ndarray)):
        raise _BadArgument(f"invalid axes {axes!r} (use 'per-activation', 'spatial' or a tuple)")
    out = []
    for a in axes:
        if not isinstance(a, (int, np.integer)) or isinstance(a, bool):
            raise _BadArgument(f"axes must be integers, got {axes!r}")
        out.append(int(a))
    if not out:
        raise _BadArgument("at least one axis must be normalized")
    if len(set(out)) != len(out):
        raise _BadArgument(f"repeated axis in {tuple(axes)}")
    if min(out) < 0 or max(out) >= ndim:
        raise _BadArgument(f"axes {tuple(out)} out of range for an input of {ndim} dimensions "
                         f"(each axis must be in 0..{ndim - 1})")
    return tuple(sorted(out))


def _check_epsilon(epsilon) -> float:
    # compared as given, before any cast to the input dtype (float32(1e-5) < 1e-5 in float64)
    if not isinstance(epsilon, (int, float, np.floating, np.integer)) or isinstance(epsilon, bool):
        raise _BadArgument(f"epsilon must be a number, got {epsilon!r}")
    if not epsilon >= MIN_EPSILON:
        raise _BadArgument(f"epsilon must be at least {MIN_EPSILON:g}, got {epsilon!r}")
    return float(epsilon)


def _check_input(x):
    x = as_tensor_variable(x)
    if np.dtype(x.dtype).kind != "f":
        raise build_error("batch_normalization", [x], f"expects a float input, got {x.type}", TypeError)
    if x.ndim < 1:
        raise _BadArgument(f"the input must have at least 1 dimension, got {x.type}")
    return x


def _check_params(x, axes: tuple, params: dict) -> tuple[list, bool]:
    """The parameters cast to x's dtype, and whether they use the full-ndim layout."""
    ndim = x.ndim
    reduced_ndim = ndim - len(axes)
    layouts = {}
    out = []
    for name, p in params.items():
        p = as_tensor_variable(p)
        if np.dtype(p.dtype).kind not in "fiu":
            raise _BadArgument(f"{name} must be numeric, got {p.type}")
        if p.ndim == ndim:
            bad = [a for a in axes if p.type.shape[a] != 1]
            if bad:
                raise _BadArgument(f"{name} ({p.type}) has the input's {ndim} dimensions, so it "
                                 f"must have length 1 on the normalized axes {axes} (axes {tuple(bad)} are not "
                                 f"statically 1; use dimshuffle or a shape=(...) with 1 there)")
            layouts[name] = True
        elif p.ndim == reduced_ndim:
            layouts[name] = False
        else:
            raise _BadArgument(f"{name} has {p.ndim} dimensions ({p.type}); expected {ndim} "
                             f"(the input's) or {reduced_ndim} (the non-normalized axes of {axes})")
        out.append(M.cast(p, x.dtype))
    if len(set(layouts.values())) > 1:
        shown = ", ".join(f"{n}: {'full' if full else 'reduced'}" for n, full in layouts.items())
        raise _BadArgument(f"gamma, beta and the statistics must use the same layout ({shown})")
    return out, next(iter(layouts.values()))


def _check_lengths(x, axes, params, names):
    """Static lengths of the parameters must match the input's non-normalized axes."""
    kept = [d for d in range(x.ndim) if d not in axes]
    for p, name in zip(params, names):
        pairs = zip(kept, p.type.shape) if p.ndim != x.ndim else ((d, p.type.shape[d]) for d in kept)
        for d, s in pairs:
            n = x.type.shape[d]
            if s is not None and n is not None and s != n:
                raise _BadArgument(f"{name} ({p.type}) does not match axis {d} of the input "
                                 f"({x.type}): length {s} != {n}")


# --- the public functions ----------------------------------------------------------------------

def batch_normalization_train(inputs, gamma, beta, axes="per-activation", epsilon=1e-4,
                              running_average_factor=0.1, running_mean=None, running_var=None,
                              impl="autodiff"):
    """Normalize ``inputs`` with the statistics of the batch; returns ``out, mean, invstd``
    and, when ``running_mean`` and ``running_var`` are given, also ``new_running_mean,
    new_running_var`` (for ``updates``).

    ``axes``: "per-activation" (0,), "spatial" (0, 2, 3, ...) or a tuple.  ``impl``:
    "autodiff" (the gradient derived from the inner graph) or "closed_form" (the paper's
    formula).  One node in the graph, whatever the variant.
    """
    try:
        x, axes, epsilon, params, full = _check_train(inputs, gamma, beta, axes, epsilon, running_average_factor,
                                                      running_mean, running_var, impl)
    except _BadArgument as e:
        raise _reraise("batch_normalization_train", [inputs, gamma, beta, running_mean, running_var], e) from None
    running = running_mean is not None
    op = BatchNormTrain(axes, epsilon, float(running_average_factor), impl, running, x.dtype, x.ndim, full)
    return tuple(op(x, *params))


def _check_train(inputs, gamma, beta, axes, epsilon, running_average_factor, running_mean, running_var, impl):
    x = _check_input(inputs)
    axes = _normalize_axes(axes, x.ndim)
    epsilon = _check_epsilon(epsilon)
    if impl not in ("autodiff", "closed_form"):
        raise _BadArgument(f"impl must be 'autodiff' or 'closed_form', got {impl!r}")
    if (running_mean is None) != (running_var is None):
        raise _BadArgument("running_mean and running_var must be given together")
    f = running_average_factor
    if not isinstance(f, (int, float, np.floating, np.integer)) or isinstance(f, bool) or not 0 <= f <= 1:
        raise _BadArgument(f"running_average_factor must be a number in [0, 1], got {f!r}")
    running = running_mean is not None
    named = {"gamma": gamma, "beta": beta}
    if running:
        named.update(running_mean=running_mean, running_var=running_var)
    params, full = _check_params(x, axes, named)
    _check_lengths(x, axes, params, list(named))
    return x, axes, epsilon, params, full


def batch_normalization_test(inputs, gamma, beta, mean, var, axes="per-activation", epsilon=1e-4):
    """Normalize ``inputs`` with given (population) statistics:
    (x - mean) * gamma / sqrt(var + epsilon) + beta, parameters in either layout."""
    try:
        x = _check_input(inputs)
        axes = _normalize_axes(axes, x.ndim)
        epsilon = _check_epsilon(epsilon)
        named = {"gamma": gamma, "beta": beta, "mean": mean, "var": var}
        params, _ = _check_params(x, axes, named)
        _check_lengths(x, axes, params, list(named))
    except _BadArgument as e:
        raise _reraise("batch_normalization_test", [inputs, gamma, beta, mean, var], e) from None
    gamma, beta, mean, var = (_to_full(p, axes, x.ndim) for p in params)
    invstd = M.true_div(1, M.sqrt(M.add(var, constant(epsilon, dtype=x.dtype))))
    return M.add(M.mul(M.sub(x, mean), gamma, invstd), beta)


def batch_normalization(inputs, gamma, beta, mean, std):
    """The plain formula (x - mean) * (gamma / std) + beta, with numpy broadcasting."""
    inputs, gamma, beta, mean, std = (as_tensor_variable(v) for v in (inputs, gamma, beta, mean, std))
    return M.add(M.mul(M.sub(inputs, mean), M.true_div(gamma, std)), beta)
