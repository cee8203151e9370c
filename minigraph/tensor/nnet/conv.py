"""2-D convolution in Theano's conventions (NCHW): ``T.nnet.conv2d`` and its gradient ops.

Three ops share one set of parameters (border mode, strides, flip, dilation):

- ``Conv2d(input, filters)``: the forward convolution;
- ``Conv2dGradInputs(filters, output_grad, input_hw)``: its vector-Jacobian product with
  respect to the input (a "transposed convolution");
- ``Conv2dGradWeights(input, output_grad, filter_hw)``: the same with respect to the filters.

Each is bilinear, so the gradient of each is again one of the three: gradient graphs of
convolutions are convolutions and can be differentiated again.  The ``*_hw`` inputs give the
spatial size of the result, which strides make ambiguous otherwise.  The numpy reference
computes through im2col (a strided window view copied into columns) and batched matrix
products.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from minigraph.graph.basic import Apply, Op
from minigraph.graph.type import TensorType, format_shape
from minigraph.tensor.basic import as_tensor_variable, build_error


# --- geometry ----------------------------------------------------------------------------

def dilated_size(k: int, d: int) -> int:
    """Extent of a kernel of ``k`` taps with dilation ``d``."""
    return (k - 1) * d + 1


def conv_padding(border_mode, kh: int, kw: int, dilation: tuple[int, int]) -> tuple[int, int]:
    """The (top/bottom, left/right) zero padding a border mode means for a kernel of kh x kw."""
    if border_mode == "valid":
        return (0, 0)
    ekh, ekw = dilated_size(kh, dilation[0]), dilated_size(kw, dilation[1])
    if border_mode == "half":
        return (ekh // 2, ekw // 2)
    if border_mode == "full":
        return (ekh - 1, ekw - 1)
    return tuple(border_mode)


def conv_out_length(n, k, pad: int, stride: int, dilation: int):
    """Output length along one axis, or None when an input length is unknown."""
    if n is None or k is None:
        return None
    return (n + 2 * pad - dilated_size(k, dilation)) // stride + 1


def _normalize_border_mode(border_mode):
    if isinstance(border_mode, str):
        if border_mode not in ("valid", "half", "full"):
            raise ValueError(f"conv2d: border_mode must be 'valid', 'half', 'full' or (ph, pw), got {border_mode!r}")
        return border_mode
    if isinstance(border_mode, (int, np.integer)):
        border_mode = (border_mode, border_mode)
    bm = tuple(int(p) for p in border_mode)
    if len(bm) != 2 or min(bm) < 0:
        raise ValueError(f"conv2d: border_mode must be two non-negative paddings (ph, pw), got {border_mode!r}")
    return bm


def _pair(name, value, minimum=1) -> tuple[int, int]:
    v = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(v) != 2 or any(int(x) < minimum for x in v):
        raise ValueError(f"conv2d: {name} must be two integers >= {minimum}, got {value!r}")
    return (int(v[0]), int(v[1]))


# --- numpy reference kernels -------------------------------------------------------------

def _windows(xp: np.ndarray, kh: int, kw: int, oh: int, ow: int, stride, dilation) -> np.ndarray:
    """A (N, C, kh, kw, oh, ow) strided view of the padded input: the im2col columns, uncopied."""
    sn, sc, sh, sw = xp.strides
    n, c = xp.shape[:2]
    return np.lib.stride_tricks.as_strided(
        xp, shape=(n, c, kh, kw, oh, ow),
        strides=(sn, sc, sh * dilation[0], sw * dilation[1], sh * stride[0], sw * stride[1]), writeable=False)


def _pad(x: np.ndarray, ph: int, pw: int) -> np.ndarray:
    if ph == 0 and pw == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))


def conv2d_forward(x: np.ndarray, w: np.ndarray, border_mode, subsample, filter_flip, dilation) -> np.ndarray:
    """out[n, o] = sum over c, i, j of w[o, c, i, j] * padded x[n, c, sh*y + dh*i, sw*x + dw*j]
    (w flipped spatially first for a true convolution)."""
    n, c, h, wd = x.shape
    o, c2, kh, kw = w.shape
    if c != c2:
        raise ValueError(f"conv2d: input has {c} channels but the filters expect {c2} "
                         f"(input {x.shape}, filters {w.shape})")
    ph, pw = conv_padding(border_mode, kh, kw, dilation)
    oh = conv_out_length(h, kh, ph, subsample[0], dilation[0])
    ow = conv_out_length(wd, kw, pw, subsample[1], dilation[1])
    if oh < 1 or ow < 1:
        raise ValueError(f"conv2d: the kernel {w.shape[2:]} (dilation {dilation}) is larger than the padded input "
                         f"{(h + 2 * ph, wd + 2 * pw)} (input {x.shape}, filters {w.shape})")
    if filter_flip:
        w = w[:, :, ::-1, ::-1]
    cols = _windows(_pad(x, ph, pw), kh, kw, oh, ow, subsample, dilation).reshape(n, c * kh * kw, oh * ow)
    out = np.matmul(w.reshape(o, c * kh * kw), cols)
    return out.reshape(n, o, oh, ow)


def conv2d_grad_inputs(w: np.ndarray, g: np.ndarray, hw, border_mode, subsample, filter_flip, dilation) -> np.ndarray:
    """The gradient of conv2d_forward with respect to its input of spatial size ``hw``."""
    o, c, kh, kw = w.shape
    n, o2, oh, ow = g.shape
    h, wd = int(hw[0]), int(hw[1])
    ph, pw = conv_padding(border_mode, kh, kw, dilation)
    if o != o2 or conv_out_length(h, kh, ph, subsample[0], dilation[0]) != oh \
            or conv_out_length(wd, kw, pw, subsample[1], dilation[1]) != ow:
        raise ValueError(f"conv2d_grad_inputs: output gradient {g.shape} does not fit filters {w.shape} "
                         f"and input size {(h, wd)}")
    if filter_flip:
        w = w[:, :, ::-1, ::-1]
    wt = np.ascontiguousarray(w.reshape(o, c * kh * kw).T)
    dcols = np.matmul(wt, g.reshape(n, o, oh * ow)).reshape(n, c, kh, kw, oh, ow)
    dxp = np.zeros((n, c, h + 2 * ph, wd + 2 * pw), dtype=np.result_type(w, g))
    sh, sw = subsample
    for i in range(kh):
        r = i * dilation[0]
        for j in range(kw):
            s = j * dilation[1]
            dxp[:, :, r:r + sh * (oh - 1) + 1:sh, s:s + sw * (ow - 1) + 1:sw] += dcols[:, :, i, j]
    return dxp[:, :, ph:ph + h, pw:pw + wd]


def conv2d_grad_weights(x: np.ndarray, g: np.ndarray, khw, border_mode, subsample, filter_flip, dilation) -> np.ndarray:
    """The gradient of conv2d_forward with respect to its filters of spatial size ``khw``."""
    n, c, h, wd = x.shape
    n2, o, oh, ow = g.shape
    kh, kw = int(khw[0]), int(khw[1])
    ph, pw = conv_padding(border_mode, kh, kw, dilation)
    if n != n2 or conv_out_length(h, kh, ph, subsample[0], dilation[0]) != oh \
            or conv_out_length(wd, kw, pw, subsample[1], dilation[1]) != ow:
        raise ValueError(f"conv2d_grad_weights: output gradient {g.shape} does not fit input {x.shape} "
                         f"and kernel size {(kh, kw)}")
    cols = _windows(_pad(x, ph, pw), kh, kw, oh, ow, subsample, dilation).reshape(n, c * kh * kw, oh * ow)
    dw = np.matmul(g.reshape(n, o, oh * ow), cols.transpose(0, 2, 1)).sum(axis=0).reshape(o, c, kh, kw)
    return dw[:, :, ::-1, ::-1] if filter_flip else dw


# --- ops ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class _ConvBase(Op):
    """Parameters shared by the three convolution ops."""

    border_mode: object = "valid"
    subsample: tuple = (1, 1)
    filter_flip: bool = True
    filter_dilation: tuple = (1, 1)

    def args(self) -> tuple:
        return (self.border_mode, self.subsample, self.filter_flip, self.filter_dilation)

    def __str__(self) -> str:
        parts = [str(self.border_mode) if isinstance(self.border_mode, str) else f"pad={self.border_mode}"]
        if self.subsample != (1, 1):
            parts.append(f"stride={self.subsample}")
        if self.filter_dilation != (1, 1):
            parts.append(f"dilation={self.filter_dilation}")
        if not self.filter_flip:
            parts.append("no_flip")
        from minigraph.graph.basic import snake_case

        return f"{snake_case(type(self).__name__)}{{{', '.join(parts)}}}"

    def _float_dtype(self, a, b) -> str:
        for v in (a, b):
            if np.dtype(v.dtype).kind != "f":
                raise build_error(self, [a, b], f"expects float tensors, got {v.type}", TypeError)
        return str(np.result_type(a.dtype, b.dtype))

    def _out_hw(self, inputs, h, w, kh, kw):
        """Static output size; errors when the kernel does not fit the padded input."""
        out = []
        for n, k, axis in ((h, kh, 0), (w, kw, 1)):
            if n is None or k is None:
                out.append(None)
                continue
            pad = conv_padding(self.border_mode, kh or 1, kw or 1, self.filter_dilation)[axis]
            length = conv_out_length(n, k, pad, self.subsample[axis], self.filter_dilation[axis])
            if length < 1:
                ek = dilated_size(k, self.filter_dilation[axis])
                raise build_error(self, inputs, f"the kernel (extent {ek} with dilation {self.filter_dilation}) is "
                                                f"larger than the padded input (length {n + 2 * pad}) along axis "
                                                f"{axis + 2}")
            out.append(length)
        return out


def _hw_vector(op, hw):
    from minigraph.tensor.shape_ops import as_shape_vector

    vec, static = as_shape_vector(op, hw)
    if vec.type.shape[0] != 2:
        raise build_error(op, [vec], "the spatial size must have two entries", TypeError)
    return vec, static


@dataclass(frozen=True)
class Conv2d(_ConvBase):
    """2-D convolution of (N, C, H, W) inputs with (O, C, kh, kw) filters."""

    def make_node(self, x, w) -> Apply:
        x, w = as_tensor_variable(x), as_tensor_variable(w)
        if x.ndim != 4 or w.ndim != 4:
            raise build_error(self, [x, w], "expects a 4-d input (batch, channels, rows, cols) and 4-d filters "
                                            "(out channels, in channels, rows, cols)", TypeError)
        dtype = self._float_dtype(x, w)
        n, c, h, wd = x.type.shape
        o, c2, kh, kw = w.type.shape
        if c is not None and c2 is not None and c != c2:
            raise build_error(self, [x, w], f"channel mismatch: the input {format_shape(x.type.shape)} has {c} "
                                            f"channels, the filters {format_shape(w.type.shape)} expect {c2}")
        oh, ow = self._out_hw([x, w], h, wd, kh, kw)
        return Apply(self, [x, w], [TensorType(dtype, (n, o, oh, ow))])

    def perform(self, node, inputs):
        x, w = inputs
        out = conv2d_forward(x, w, *self.args())
        return (np.asarray(out, dtype=node.outputs[0].dtype),)

    def grad(self, inputs, outputs, output_grads):
        from minigraph.tensor.shape_ops import shape_i

        x, w = inputs
        (g,) = output_grads
        gx = Conv2dGradInputs(*self.args())(w, g, (shape_i(x, 2), shape_i(x, 3)))
        gw = Conv2dGradWeights(*self.args())(x, g, (shape_i(w, 2), shape_i(w, 3)))
        return [gx, gw]


@dataclass(frozen=True)
class Conv2dGradInputs(_ConvBase):
    """The gradient of ``Conv2d`` with respect to its input: (filters, output_grad, input_hw) -> input_grad."""

    def make_node(self, w, g, hw) -> Apply:
        w, g = as_tensor_variable(w), as_tensor_variable(g)
        if w.ndim != 4 or g.ndim != 4:
            raise build_error(self, [w, g], "expects 4-d filters and a 4-d output gradient", TypeError)
        dtype = self._float_dtype(w, g)
        o, c, kh, kw = w.type.shape
        if o is not None and g.type.shape[1] is not None and o != g.type.shape[1]:
            raise build_error(self, [w, g], f"the filters have {o} output channels, the gradient {g.type.shape[1]}")
        vec, (h, wd) = _hw_vector(self, hw)
        return Apply(self, [w, g, vec], [TensorType(dtype, (g.type.shape[0], c, h, wd))])

    def perform(self, node, inputs):
        w, g, hw = inputs
        return (np.asarray(conv2d_grad_inputs(w, g, hw, *self.args()), dtype=node.outputs[0].dtype),)

    def grad(self, inputs, outputs, output_grads):
        from minigraph.tensor.shape_ops import shape_i

        w, g, _ = inputs
        (h,) = output_grads  # <h, GI(w, g)> = <conv(h, w), g>
        gw = Conv2dGradWeights(*self.args())(h, g, (shape_i(w, 2), shape_i(w, 3)))
        gg = Conv2d(*self.args())(h, w)
        return [gw, gg, None]


@dataclass(frozen=True)
class Conv2dGradWeights(_ConvBase):
    """The gradient of ``Conv2d`` with respect to its filters: (input, output_grad, filter_hw) -> filter_grad."""

    def make_node(self, x, g, khw) -> Apply:
        x, g = as_tensor_variable(x), as_tensor_variable(g)
        if x.ndim != 4 or g.ndim != 4:
            raise build_error(self, [x, g], "expects a 4-d input and a 4-d output gradient", TypeError)
        dtype = self._float_dtype(x, g)
        n, c = x.type.shape[:2]
        if n is not None and g.type.shape[0] is not None and n != g.type.shape[0]:
            raise build_error(self, [x, g], f"batch sizes differ: {n} and {g.type.shape[0]}")
        vec, (kh, kw) = _hw_vector(self, khw)
        return Apply(self, [x, g, vec], [TensorType(dtype, (g.type.shape[1], c, kh, kw))])

    def perform(self, node, inputs):
        x, g, khw = inputs
        return (np.asarray(conv2d_grad_weights(x, g, khw, *self.args()), dtype=node.outputs[0].dtype),)

    def grad(self, inputs, outputs, output_grads):
        from minigraph.tensor.shape_ops import shape_i

        x, g, _ = inputs
        (h,) = output_grads  # <h, GW(x, g)> = <conv(x, h), g>
        gx = Conv2dGradInputs(*self.args())(h, g, (shape_i(x, 2), shape_i(x, 3)))
        gg = Conv2d(*self.args())(x, h)
        return [gx, gg, None]


def conv2d(input, filters, input_shape=None, filter_shape=None, border_mode="valid", subsample=(1, 1),
           filter_flip=True, filter_dilation=(1, 1)):
    """2-D convolution (Theano's ``T.nnet.conv2d``): input (N, C, H, W), filters (O, C, kh, kw).

    ``border_mode``: "valid" (no padding), "half" (pad kernel//2: same size for odd kernels),
    "full" (pad kernel-1) or (ph, pw).  ``filter_flip=True`` flips the kernel (a true
    convolution); False computes cross-correlation.  ``input_shape``/``filter_shape`` are
    optional hints (tuples, None for unknown) checked against the static shapes.
    """
    input, filters = as_tensor_variable(input), as_tensor_variable(filters)
    op = Conv2d(_normalize_border_mode(border_mode), _pair("subsample", subsample), bool(filter_flip),
                _pair("filter_dilation", filter_dilation))
    for hint, v, what in ((input_shape, input, "input_shape"), (filter_shape, filters, "filter_shape")):
        if hint is None:
            continue
        hint = tuple(hint)
        if len(hint) != v.ndim or any(a is not None and b is not None and a != b for a, b in zip(hint, v.type.shape)):
            raise build_error(op, [input, filters], f"{what} {hint} does not match {format_shape(v.type.shape)}")
    return op(input, filters)


__all__ = ["conv2d", "Conv2d", "Conv2dGradInputs", "Conv2dGradWeights", "conv_padding", "conv_out_length"]
