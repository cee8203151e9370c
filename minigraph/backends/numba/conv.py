"""Numba lowerings of the convolution and pooling ops (``T.nnet.conv2d``, ``T.signal.pool``).

Convolutions are im2col + BLAS: a compiled loop (parallel over images and channels) copies
the windows of the batch into columns, and numpy's batched matrix product (BLAS) does the
arithmetic.  Very large batches go in chunks (``CHUNK_BYTES`` of columns) to bound the
scratch memory.  The gradient with respect to the input scatters columns back (col2im),
again parallel over images and channels, so no two threads write the same pixel.  Pooling is
one compiled loop per op, parallel over the (image, channel) planes.  Each loop also has a
serial variant, used below ``PARALLEL_THRESHOLD`` elements.

Each lowering is a driver expression (``Inline``) calling a small runner object that holds
the op's parameters and reuses its scratch columns between calls.  Padding is never
materialized: the loops clip each kernel row to the input and write zeros elsewhere.
"""
from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from minigraph.backends.numba.registry import Inline, register
from minigraph.tensor.nnet import conv as C
from minigraph.tensor.signal import pool as P

#: bytes of im2col columns processed per chunk.  Each chunk costs parallel regions (the copy,
#: then BLAS), whose hand-offs between numba's and BLAS's threads were the dominant cost on
#: busy cores with small (1-4 MiB, cache-sized) chunks, so a chunk holds a whole typical batch
CHUNK_BYTES = 64 << 20

#: elements of work below which the serial variant of a loop runs (a parallel region costs
#: more than it saves on small arrays)
PARALLEL_THRESHOLD = 1 << 16


def _variants(fn):
    """(serial, parallel) compiled variants of a loop written with ``prange``."""
    return njit(cache=True)(fn), njit(parallel=True, cache=True)(fn)


def _pick(variants, work: int):
    """The parallel variant when the work is large and numba has several threads."""
    return variants[1] if work >= PARALLEL_THRESHOLD and numba.get_num_threads() > 1 else variants[0]


# --- compiled loops --------------------------------------------------------------------------

@njit(cache=True, inline="always")
def _valid_range(off, stride, length, out_len):
    """[z0, z1): the output positions z whose input column z*stride + off lies in [0, length)."""
    z0 = 0
    if off < 0:
        z0 = (-off + stride - 1) // stride
    z1 = 0
    if length - off > 0:
        z1 = (length - off + stride - 1) // stride
    return min(z0, out_len), max(min(z1, out_len), min(z0, out_len))


def _im2col(x, kh, kw, oh, ow, ph, pw, sh, sw, dh, dw, cols):
    """cols[b, (c*kh + i)*kw + j, y*ow + z] = padded x[b, c, y*sh + i*dh, z*sw + j*dw]."""
    n, c, h, wd = x.shape
    for t in prange(n * c):
        b, ci = t // c, t % c
        for i in range(kh):
            for j in range(kw):
                row = (ci * kh + i) * kw + j
                off = j * dw - pw
                z0, z1 = _valid_range(off, sw, wd, ow)
                for y in range(oh):
                    r = y * sh + i * dh - ph
                    base = y * ow
                    if r < 0 or r >= h:
                        for z in range(ow):
                            cols[b, row, base + z] = 0
                        continue
                    for z in range(z0):
                        cols[b, row, base + z] = 0
                    if sw == 1:
                        for z in range(z0, z1):
                            cols[b, row, base + z] = x[b, ci, r, z + off]
                    else:
                        for z in range(z0, z1):
                            cols[b, row, base + z] = x[b, ci, r, z * sw + off]
                    for z in range(z1, ow):
                        cols[b, row, base + z] = 0


def _col2im(cols, kh, kw, oh, ow, ph, pw, sh, sw, dh, dw, dx):
    """The adjoint of im2col: dx[b, c] = sum of the columns that read each pixel (dx is overwritten)."""
    n, c, h, wd = dx.shape
    for t in prange(n * c):
        b, ci = t // c, t % c
        for r in range(h):
            for q in range(wd):
                dx[b, ci, r, q] = 0
        for i in range(kh):
            for j in range(kw):
                row = (ci * kh + i) * kw + j
                off = j * dw - pw
                z0, z1 = _valid_range(off, sw, wd, ow)
                for y in range(oh):
                    r = y * sh + i * dh - ph
                    if r < 0 or r >= h:
                        continue
                    base = y * ow
                    if sw == 1:
                        for z in range(z0, z1):
                            dx[b, ci, r, z + off] += cols[b, row, base + z]
                    else:
                        for z in range(z0, z1):
                            dx[b, ci, r, z * sw + off] += cols[b, row, base + z]


IM2COL, COL2IM = _variants(_im2col), _variants(_col2im)


# --- convolution runners (called by the driver) -----------------------------------------------------

def _scratch(holder, shape, dtype):
    buf = holder.scratch
    if buf is None or buf.dtype != dtype or buf.size < int(np.prod(shape)):
        buf = holder.scratch = np.empty(int(np.prod(shape)), dtype)
    return buf[:int(np.prod(shape))].reshape(shape)


def _reuse(buf, shape, dtype):
    return buf if buf.shape == shape and buf.dtype == dtype else np.empty(shape, dtype)


def _image_chunks(holder, n: int, ckk: int, npix: int, dtype):
    """(start, end, columns) for the chunks of ``n`` images whose im2col columns
    (``ckk`` x ``npix`` each) fit in CHUNK_BYTES; the columns are the holder's scratch."""
    step = max(1, min(n, CHUNK_BYTES // max(ckk * npix * dtype.itemsize, 1)))
    cols = _scratch(holder, (step, ckk, npix), dtype)
    for s in range(0, n, step):
        e = min(n, s + step)
        yield s, e, cols[:e - s]


class ConvRunner:
    """Runs one convolution node: its parameters, and scratch columns reused between calls."""

    def __init__(self, op, out_dtype):
        self.op = op
        self.dtype = np.dtype(out_dtype)
        self.scratch = None

    def geometry(self, h, wd, kh, kw):
        op = self.op
        ph, pw = C.conv_padding(op.border_mode, kh, kw, op.filter_dilation)
        oh = C.conv_out_length(h, kh, ph, op.subsample[0], op.filter_dilation[0])
        ow = C.conv_out_length(wd, kw, pw, op.subsample[1], op.filter_dilation[1])
        return ph, pw, oh, ow

    def _args(self, kh, kw, oh, ow, ph, pw):
        (sh, sw), (dh, dw) = self.op.subsample, self.op.filter_dilation
        return (kh, kw, oh, ow, ph, pw, sh, sw, dh, dw)

    def _kernel_matrix(self, w):
        w = w[:, :, ::-1, ::-1] if self.op.filter_flip else w
        return np.ascontiguousarray(w.reshape(w.shape[0], -1), dtype=self.dtype)

    def forward(self, x, w, buf):
        """conv2d(x, w): per chunk of images, im2col then one batched matrix product."""
        n, c, h, wd = x.shape
        o, c2, kh, kw = w.shape
        ph, pw, oh, ow = self.geometry(h, wd, kh, kw)
        if c != c2 or oh < 1 or ow < 1:
            raise ValueError(f"conv2d: input {x.shape} does not fit filters {w.shape}")
        x = np.ascontiguousarray(x, dtype=self.dtype)
        w2 = self._kernel_matrix(w)
        ckk, npix = c * kh * kw, oh * ow
        out = _reuse(buf, (n, o, oh, ow), self.dtype)
        out3 = out.reshape(n, o, npix)
        args = self._args(kh, kw, oh, ow, ph, pw)
        for s, e, cols in _image_chunks(self, n, ckk, npix, self.dtype):
            _pick(IM2COL, cols.size)(x[s:e], *args, cols)
            np.matmul(w2, cols, out=out3[s:e])
        return out

    def grad_weights(self, x, g, khw, buf):
        """dW = sum over images of g[b] @ cols[b].T, chunk by chunk."""
        n, c, h, wd = x.shape
        n2, o, oh, ow = g.shape
        kh, kw = int(khw[0]), int(khw[1])
        ph, pw, oh2, ow2 = self.geometry(h, wd, kh, kw)
        if n != n2 or (oh, ow) != (oh2, ow2):
            raise ValueError(f"conv2d_grad_weights: output gradient {g.shape} does not fit input {x.shape}")
        x = np.ascontiguousarray(x, dtype=self.dtype)
        g3 = np.ascontiguousarray(g, dtype=self.dtype).reshape(n, o, oh * ow)
        ckk, npix = c * kh * kw, oh * ow
        acc = np.zeros((o, ckk), self.dtype)
        part = None
        args = self._args(kh, kw, oh, ow, ph, pw)
        for s, e, cols in _image_chunks(self, n, ckk, npix, self.dtype):
            if part is None:  # sized by the first (largest) chunk
                part = np.empty((e - s, o, ckk), self.dtype)
            _pick(IM2COL, cols.size)(x[s:e], *args, cols)
            np.matmul(g3[s:e], cols.transpose(0, 2, 1), out=part[:e - s])
            acc += part[:e - s].sum(axis=0)
        dw = acc.reshape(o, c, kh, kw)
        dw = dw[:, :, ::-1, ::-1] if self.op.filter_flip else dw
        out = _reuse(buf, (o, c, kh, kw), self.dtype)
        out[...] = dw
        return out

    def grad_inputs(self, w, g, hw, buf):
        """dX = col2im(W.T @ g[b]), chunk by chunk."""
        o, c, kh, kw = w.shape
        n, o2, oh, ow = g.shape
        h, wd = int(hw[0]), int(hw[1])
        ph, pw, oh2, ow2 = self.geometry(h, wd, kh, kw)
        if o != o2 or (oh, ow) != (oh2, ow2):
            raise ValueError(f"conv2d_grad_inputs: output gradient {g.shape} does not fit filters {w.shape}")
        w2t = np.ascontiguousarray(self._kernel_matrix(w).T)
        g3 = np.ascontiguousarray(g, dtype=self.dtype).reshape(n, o, oh * ow)
        ckk, npix = c * kh * kw, oh * ow
        dx = _reuse(buf, (n, c, h, wd), self.dtype)
        args = self._args(kh, kw, oh, ow, ph, pw)
        for s, e, cols in _image_chunks(self, n, ckk, npix, self.dtype):
            np.matmul(w2t, g3[s:e], out=cols)
            _pick(COL2IM, cols.size)(cols, *args, dx[s:e])
        return dx


@register(C.Conv2d)
def lower_conv2d(node, ctx):
    runner = ConvRunner(node.op, node.outputs[0].dtype)
    return Inline(ctx.ref(runner.forward) + "({i0}, {i1}, {b0})", kind="conv", buffers=True)


@register(C.Conv2dGradWeights)
def lower_conv2d_grad_weights(node, ctx):
    runner = ConvRunner(node.op, node.outputs[0].dtype)
    return Inline(ctx.ref(runner.grad_weights) + "({i0}, {i1}, {i2}, {b0})", kind="conv", buffers=True)


@register(C.Conv2dGradInputs)
def lower_conv2d_grad_inputs(node, ctx):
    runner = ConvRunner(node.op, node.outputs[0].dtype)
    return Inline(ctx.ref(runner.grad_inputs) + "({i0}, {i1}, {i2}, {b0})", kind="conv", buffers=True)


# --- pooling -----------------------------------------------------------------------------------

# modes as integers inside the loops
_MAX, _INC, _EXC = 0, 1, 2


@njit(cache=True, inline="always")
def _bounds(i, ws, stride, pad, n):
    """Window ``i`` along one axis: padded [p0, p1) clipped to the padded input, and real [r0, r1)."""
    p0 = i * stride
    p1 = min(p0 + ws, n + 2 * pad)
    return p0, p1, max(p0 - pad, 0), min(p1 - pad, n)


def _pool_forward(x, out, wsh, wsw, sth, stw, ph, pw, mode):
    """x, out: (planes, H, W) and (planes, OH, OW)."""
    m, h, wd = x.shape
    oh, ow = out.shape[1], out.shape[2]
    for p in prange(m):
        for i in range(oh):
            a0, a1, r0, r1 = _bounds(i, wsh, sth, ph, h)
            for j in range(ow):
                b0, b1, c0, c1 = _bounds(j, wsw, stw, pw, wd)
                if mode == _MAX:
                    best = -np.inf
                    for r in range(r0, r1):
                        for q in range(c0, c1):
                            v = x[p, r, q]
                            if v > best or v != v:
                                best = v
                    out[p, i, j] = best
                else:
                    total = 0.0
                    for r in range(r0, r1):
                        for q in range(c0, c1):
                            total += x[p, r, q]
                    count = (a1 - a0) * (b1 - b0) if mode == _INC else (r1 - r0) * (c1 - c0)
                    out[p, i, j] = total / count


def _pool_backward(x, pooled, g, gx, wsh, wsw, sth, stw, ph, pw, mode):
    """Input gradient (gx overwritten): max routes g to the maxima, averages spread it."""
    m, h, wd = x.shape
    oh, ow = g.shape[1], g.shape[2]
    for p in prange(m):
        for r in range(h):
            for q in range(wd):
                gx[p, r, q] = 0
        for i in range(oh):
            a0, a1, r0, r1 = _bounds(i, wsh, sth, ph, h)
            for j in range(ow):
                b0, b1, c0, c1 = _bounds(j, wsw, stw, pw, wd)
                gv = g[p, i, j]
                if mode == _MAX:
                    best = pooled[p, i, j]
                    for r in range(r0, r1):
                        for q in range(c0, c1):
                            if x[p, r, q] == best:
                                gx[p, r, q] += gv
                else:
                    count = (a1 - a0) * (b1 - b0) if mode == _INC else (r1 - r0) * (c1 - c0)
                    share = gv / count
                    for r in range(r0, r1):
                        for q in range(c0, c1):
                            gx[p, r, q] += share


def _max_pool_gather(x, pooled, gx, out, wsh, wsw, sth, stw, ph, pw):
    """MaxPoolGradGrad: each window's sum of gx at its maxima."""
    m, h, wd = x.shape
    oh, ow = out.shape[1], out.shape[2]
    for p in prange(m):
        for i in range(oh):
            a0, a1, r0, r1 = _bounds(i, wsh, sth, ph, h)
            for j in range(ow):
                b0, b1, c0, c1 = _bounds(j, wsw, stw, pw, wd)
                best = pooled[p, i, j]
                total = 0.0
                for r in range(r0, r1):
                    for q in range(c0, c1):
                        if x[p, r, q] == best:
                            total += gx[p, r, q]
                out[p, i, j] = total


POOL_FORWARD, POOL_BACKWARD, MAX_POOL_GATHER = _variants(_pool_forward), _variants(_pool_backward), \
    _variants(_max_pool_gather)


class PoolRunner:
    """Runs one pooling node over (planes, H, W) views of its arrays."""

    def __init__(self, op):
        self.op = op
        self.mode = {"max": _MAX, "average_inc_pad": _INC, "average_exc_pad": _EXC}[op.mode]

    def _params(self):
        op = self.op
        return (op.ws[0], op.ws[1], op.stride[0], op.stride[1], op.pad[0], op.pad[1])

    def _planes(self, a):
        return np.ascontiguousarray(a).reshape((-1,) + a.shape[-2:])

    def _out_shape(self, x):
        oh, ow = self.op.out_hw(*x.shape[-2:])
        return x.shape[:-2] + (oh, ow)

    def forward(self, x, buf):
        out = _reuse(buf, self._out_shape(x), x.dtype)
        _pick(POOL_FORWARD, x.size)(self._planes(x), out.reshape((-1,) + out.shape[-2:]), *self._params(), self.mode)
        return out

    def backward_max(self, x, pooled, g, buf):
        gx = _reuse(buf, x.shape, x.dtype)
        _pick(POOL_BACKWARD, x.size)(self._planes(x), self._planes(pooled), self._planes(g),
                                     gx.reshape((-1,) + x.shape[-2:]), *self._params(), _MAX)
        return gx

    def backward_average(self, x, g, buf):
        gx = _reuse(buf, x.shape, x.dtype)
        planes = self._planes(x)
        _pick(POOL_BACKWARD, x.size)(planes, planes[:, :0, :0], self._planes(g),
                                     gx.reshape((-1,) + x.shape[-2:]), *self._params(), self.mode)
        return gx

    def gather_max(self, x, pooled, gx, buf):
        out = _reuse(buf, self._out_shape(x), x.dtype)
        _pick(MAX_POOL_GATHER, x.size)(self._planes(x), self._planes(pooled), self._planes(gx),
                                       out.reshape((-1,) + out.shape[-2:]), *self._params())
        return out


@register(P.Pool)
def lower_pool(node, ctx):
    return Inline(ctx.ref(PoolRunner(node.op).forward) + "({i0}, {b0})", kind="pool", buffers=True)


@register(P.MaxPoolGrad)
def lower_max_pool_grad(node, ctx):
    return Inline(ctx.ref(PoolRunner(node.op).backward_max) + "({i0}, {i1}, {i2}, {b0})", kind="pool", buffers=True)


@register(P.AveragePoolGrad)
def lower_average_pool_grad(node, ctx):
    return Inline(ctx.ref(PoolRunner(node.op).backward_average) + "({i0}, {i1}, {b0})", kind="pool", buffers=True)


@register(P.MaxPoolGradGrad)
def lower_max_pool_grad_grad(node, ctx):
    return Inline(ctx.ref(PoolRunner(node.op).gather_max) + "({i0}, {i1}, {i2}, {b0})", kind="pool", buffers=True)
