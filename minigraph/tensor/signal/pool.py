"""2-D pooling over the last two axes (Theano's ``T.signal.pool.pool_2d``) and its gradients.

``Pool`` computes max or average pooling.  Its gradient ops are ``MaxPoolGrad`` (routes the
output gradient to every position equal to its window's maximum) and ``AveragePoolGrad``
(spreads it evenly over the counted positions).  Both are linear in the output gradient;
their own gradients are ``MaxPoolGradGrad`` (gathers at the maxima) and ``Pool`` itself, so
pooling can be differentiated twice.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from minigraph.graph.basic import Apply, Op
from minigraph.graph.type import TensorType, format_shape
from minigraph.tensor.basic import as_tensor_variable, build_error

MODES = ("max", "average_inc_pad", "average_exc_pad")


def pool_out_length(n, ws: int, stride: int, pad: int, ignore_border: bool):
    """Output length along one axis (Theano's rule), or None when ``n`` is unknown."""
    if n is None:
        return None
    if ignore_border:
        return max((n + 2 * pad - ws) // stride + 1, 0)
    if stride >= ws:
        return (n - 1) // stride + 1
    return max(0, (n - 1 - ws + stride) // stride) + 1


def _window_bounds(i: int, ws: int, stride: int, pad: int, n: int, exclude_pad: bool) -> tuple[int, int]:
    """[start, end) of window ``i`` in padded coordinates, clipped to the padded input
    (and to the unpadded part when ``exclude_pad``)."""
    start = i * stride
    end = min(start + ws, n + 2 * pad)
    if exclude_pad:
        start, end = max(start, pad), min(end, n + pad)
    return start, end


@dataclass(frozen=True)
class _PoolBase(Op):
    """Parameters shared by the pooling ops."""

    ws: tuple = (2, 2)
    ignore_border: bool = True
    stride: tuple = (2, 2)
    pad: tuple = (0, 0)
    mode: str = "max"

    def __str__(self) -> str:
        from minigraph.graph.basic import snake_case

        parts = [self.mode, f"ws={self.ws}"]
        if self.stride != self.ws:
            parts.append(f"stride={self.stride}")
        if self.pad != (0, 0):
            parts.append(f"pad={self.pad}")
        if not self.ignore_border:
            parts.append("keep_border")
        return f"{snake_case(type(self).__name__)}{{{', '.join(parts)}}}"

    def out_hw(self, h, w):
        return (pool_out_length(h, self.ws[0], self.stride[0], self.pad[0], self.ignore_border),
                pool_out_length(w, self.ws[1], self.stride[1], self.pad[1], self.ignore_border))

    def _check_x(self, x, *others):
        if x.ndim < 2:
            raise build_error(self, [x, *others], "pools over the last two axes: expects at least 2 dimensions",
                              TypeError)
        if np.dtype(x.dtype).kind != "f":
            raise build_error(self, [x, *others], f"expects a float tensor, got {x.type}", TypeError)
        h, w = x.type.shape[-2:]
        oh, ow = self.out_hw(h, w)
        if (oh is not None and oh < 1) or (ow is not None and ow < 1):
            raise build_error(self, [x, *others], f"the window {self.ws} is larger than the padded input "
                                                  f"{format_shape(x.type.shape[-2:])} with padding {self.pad}")
        return x.type.shape[:-2] + (oh, ow)

    def windows(self, h: int, w: int):
        """Each output position with its window bounds: ((i, j), (r0, r1, c0, c1)) in padded coordinates."""
        oh, ow = self.out_hw(h, w)
        exclude = self.mode == "average_exc_pad"
        for i in range(oh):
            r0, r1 = _window_bounds(i, self.ws[0], self.stride[0], self.pad[0], h, exclude)
            for j in range(ow):
                c0, c1 = _window_bounds(j, self.ws[1], self.stride[1], self.pad[1], w, exclude)
                yield (i, j), (r0, r1, c0, c1)

    def padded(self, x: np.ndarray, fill: float) -> np.ndarray:
        ph, pw = self.pad
        if ph == 0 and pw == 0:
            return x
        widths = [(0, 0)] * (x.ndim - 2) + [(ph, ph), (pw, pw)]
        return np.pad(x, widths, constant_values=fill)

    def count(self, r0, r1, c0, c1) -> int:
        """The divisor of an average window (Theano: the full window when padding is included)."""
        return (r1 - r0) * (c1 - c0)


@dataclass(frozen=True)
class Pool(_PoolBase):
    """Max or average pooling of windows ``ws`` moved by ``stride`` over the last two axes."""

    def make_node(self, x) -> Apply:
        x = as_tensor_variable(x)
        shape = self._check_x(x)
        return Apply(self, [x], [TensorType(x.dtype, shape)])

    def perform(self, node, inputs):
        x = inputs[0]
        h, w = x.shape[-2:]
        oh, ow = self.out_hw(h, w)
        is_max = self.mode == "max"
        xp = self.padded(x, -np.inf if is_max else 0)
        out = np.empty(x.shape[:-2] + (oh, ow), dtype=x.dtype)
        for (i, j), (r0, r1, c0, c1) in self.windows(h, w):
            win = xp[..., r0:r1, c0:c1]
            out[..., i, j] = win.max(axis=(-2, -1)) if is_max else win.sum(axis=(-2, -1)) / self.count(r0, r1, c0, c1)
        return (out,)

    def grad(self, inputs, outputs, output_grads):
        (x,), (out,), (g,) = inputs, outputs, output_grads
        fields = (self.ws, self.ignore_border, self.stride, self.pad, self.mode)
        if self.mode == "max":
            return [MaxPoolGrad(*fields)(x, out, g)]
        return [AveragePoolGrad(*fields)(x, g)]


@dataclass(frozen=True)
class MaxPoolGrad(_PoolBase):
    """(x, pooled, output_grad) -> input_grad: each window's gradient goes to its maxima."""

    def make_node(self, x, out, g) -> Apply:
        x, out, g = (as_tensor_variable(v) for v in (x, out, g))
        self._check_x(x, out, g)
        if out.ndim != x.ndim or g.ndim != x.ndim:
            raise build_error(self, [x, out, g], "the pooled value and its gradient must have the input's rank",
                              TypeError)
        return Apply(self, [x, out, g], [TensorType(x.dtype, x.type.shape)])

    def perform(self, node, inputs):
        x, out, g = inputs
        h, w = x.shape[-2:]
        xp = self.padded(x, -np.inf)
        gx = np.zeros(xp.shape, dtype=x.dtype)
        for (i, j), (r0, r1, c0, c1) in self.windows(h, w):
            hit = xp[..., r0:r1, c0:c1] == out[..., i, j, None, None]
            gx[..., r0:r1, c0:c1] += hit * g[..., i, j, None, None]
        ph, pw = self.pad
        return (np.ascontiguousarray(gx[..., ph:ph + h, pw:pw + w]),)

    def grad(self, inputs, outputs, output_grads):
        from minigraph.tensor.math import zeros_like

        x, out, _ = inputs
        (h,) = output_grads
        fields = (self.ws, self.ignore_border, self.stride, self.pad, self.mode)
        return [zeros_like(x), zeros_like(out), MaxPoolGradGrad(*fields)(x, out, h)]


@dataclass(frozen=True)
class MaxPoolGradGrad(_PoolBase):
    """(x, pooled, input_shaped) -> pooled_shaped: each window's sum of its values at the maxima
    (the adjoint of ``MaxPoolGrad`` in its gradient argument)."""

    def make_node(self, x, out, gx) -> Apply:
        x, out, gx = (as_tensor_variable(v) for v in (x, out, gx))
        shape = self._check_x(x, out, gx)
        if gx.ndim != x.ndim or out.ndim != x.ndim:
            raise build_error(self, [x, out, gx], "all three arguments must have the input's rank", TypeError)
        return Apply(self, [x, out, gx], [TensorType(x.dtype, shape)])

    def perform(self, node, inputs):
        x, out, gx = inputs
        h, w = x.shape[-2:]
        xp, gp = self.padded(x, -np.inf), self.padded(gx, 0)
        result = np.empty(out.shape, dtype=x.dtype)
        for (i, j), (r0, r1, c0, c1) in self.windows(h, w):
            hit = xp[..., r0:r1, c0:c1] == out[..., i, j, None, None]
            result[..., i, j] = (hit * gp[..., r0:r1, c0:c1]).sum(axis=(-2, -1))
        return (result,)

    def grad(self, inputs, outputs, output_grads):
        from minigraph.tensor.math import zeros_like

        x, out, _ = inputs
        (h,) = output_grads
        fields = (self.ws, self.ignore_border, self.stride, self.pad, self.mode)
        return [zeros_like(x), zeros_like(out), MaxPoolGrad(*fields)(x, out, h)]


@dataclass(frozen=True)
class AveragePoolGrad(_PoolBase):
    """(x, output_grad) -> input_grad: each window's gradient spread over its counted positions."""

    def make_node(self, x, g) -> Apply:
        x, g = as_tensor_variable(x), as_tensor_variable(g)
        self._check_x(x, g)
        if g.ndim != x.ndim:
            raise build_error(self, [x, g], "the output gradient must have the input's rank", TypeError)
        return Apply(self, [x, g], [TensorType(x.dtype, x.type.shape)])

    def perform(self, node, inputs):
        x, g = inputs
        h, w = x.shape[-2:]
        ph, pw = self.pad
        gx = np.zeros(x.shape[:-2] + (h + 2 * ph, w + 2 * pw), dtype=x.dtype)
        for (i, j), (r0, r1, c0, c1) in self.windows(h, w):
            gx[..., r0:r1, c0:c1] += (g[..., i, j] / self.count(r0, r1, c0, c1))[..., None, None]
        return (np.ascontiguousarray(gx[..., ph:ph + h, pw:pw + w]),)

    def grad(self, inputs, outputs, output_grads):
        from minigraph.tensor.math import zeros_like

        x, _ = inputs
        (h,) = output_grads  # linear in g: the adjoint of the adjoint is the pooling itself
        fields = (self.ws, self.ignore_border, self.stride, self.pad, self.mode)
        return [zeros_like(x), Pool(*fields)(h)]


def _pair(name, value, minimum) -> tuple[int, int]:
    v = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(v) != 2 or any(int(a) < minimum for a in v):
        raise ValueError(f"pool_2d: {name} must be two integers >= {minimum}, got {value!r}")
    return (int(v[0]), int(v[1]))


def pool_2d(input, ws=(2, 2), ignore_border=True, stride=None, pad=(0, 0), mode="max"):
    """Pool windows ``ws`` over the last two axes of ``input``, moved by ``stride`` (default ``ws``).

    ``mode``: "max", "average_inc_pad" (padding counts in the average) or "average_exc_pad".
    ``ignore_border=False`` keeps the partial windows at the right and bottom edges;
    padding needs ``ignore_border=True`` and must be smaller than the window.
    """
    if mode == "sum" or mode not in MODES:
        raise ValueError(f"pool_2d: mode must be one of {', '.join(MODES)}, got {mode!r}")
    ws = _pair("ws", ws, 1)
    stride = ws if stride is None else _pair("stride", stride, 1)
    pad = _pair("pad", pad, 0)
    if pad != (0, 0) and not ignore_border:
        raise ValueError("pool_2d: padding requires ignore_border=True")
    if pad[0] >= ws[0] or pad[1] >= ws[1]:
        if pad != (0, 0):
            raise ValueError(f"pool_2d: padding {pad} must be smaller than the window {ws}")
    return Pool(ws, bool(ignore_border), stride, pad, mode)(as_tensor_variable(input))


__all__ = ["pool_2d", "Pool", "MaxPoolGrad", "MaxPoolGradGrad", "AveragePoolGrad", "pool_out_length"]
