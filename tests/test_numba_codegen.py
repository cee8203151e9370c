"""Golden tests of the generated source for three canonical graphs, built directly from
fused ops (``rewrites=None``) so that only the code generator decides the text.  When a change
to the generator is intended, print ``f.source()`` and update the text here after reading it."""
import numpy as np
import pytest

import minigraph as mg
import minigraph.tensor as T
from minigraph.tensor import elemwise as E
from minigraph.tensor import math as M

pytest.importorskip("numba")


def fused_chain():
    """tanh(x * w + b), b a row broadcast over x, as one Composite."""
    x, b, w = T.fmatrix("x"), T.fmatrix("b", shape=(1, None)), T.fscalar("w")
    comp = E.Composite(3, ((E.Mul(), (0, 1)), (E.Add(), (3, 2)), (E.Tanh(), (4,))), (5,))
    return [x, b, w], [E.Elemwise(comp)(x, w.dimshuffle("x", "x"), b)]


def batchnorm_forward():
    """Per-activation batch norm: sums of x and x^2 in one pass, the statistics in one small
    loop, the normalization in one loop."""
    x, gamma, beta = T.fmatrix("x"), T.fvector("gamma"), T.fvector("beta")
    s1, s2 = M.FusedReduce(E.Composite(1, ((E.Sqr(), (0,)),), (0, 1)), (0,), ("add", "add"))(x)
    n = T.cast(x.shape[0], "float32").dimshuffle("x")
    eps = T.constant(np.full((1,), 1e-4, "float32"))
    # mean = s1 / n; invstd = 1 / sqrt(s2 / n - mean^2 + eps)
    stats = E.Composite(4, ((E.TrueDiv(), (0, 2)), (E.TrueDiv(), (1, 2)), (E.Sqr(), (4,)), (E.Sub(), (5, 6)),
                            (E.Add(), (7, 3)), (E.Sqrt(), (8,)), (E.TrueDiv(), (2, 9))), (4, 10))
    mean, invstd_n = E.Elemwise(stats)(s1, s2, n, eps)
    # y = (x - mean) * invstd * gamma + beta   (invstd_n is n / sqrt(...); divided by n below)
    norm = E.Composite(6, ((E.Sub(), (0, 1)), (E.TrueDiv(), (2, 5)), (E.Mul(), (6, 7)), (E.Mul(), (8, 3)),
                           (E.Add(), (9, 4))), (10,))
    row = lambda v: v.dimshuffle("x", 0)
    y = E.Elemwise(norm)(x, row(mean), row(invstd_n), row(gamma), row(beta), n.dimshuffle("x", 0))
    return [x, gamma, beta], [y]


def reduction_with_producer():
    """sum over axes (0, 2, 3) of (x - m)^2, m broadcast over all but axis 1."""
    x, m = T.ftensor4("x"), T.ftensor4("m", shape=(1, None, 1, 1))
    comp = E.Composite(2, ((E.Sub(), (0, 1)), (E.Sqr(), (2,))), (3,))
    return [x, m], [M.FusedReduce(comp, (0, 2, 3), ("add",))(x, m)]

GOLDEN_FUSED_CHAIN = '''\
# driver: runs the kernels in order
def run(inputs):
    x, b, w = inputs
    # a = dimshuffle{x,x}(w) :: float32[1, 1]
    a = w[None, None]
    # c = composite{tanh(add(mul(i0, i1), i2))}(x, a, b) :: float32[?, ?]
    c, = _k1s(1, x, a, b, _out(0, (x.shape[0], x.shape[1]), np.float32))
    return [c]

# compiled driver: the same steps compiled, for calls on inputs of up to 262144 elements, after 16 such calls
def driver(x, b, w, _b, _c, _z, _st):
    # a = dimshuffle{x,x}(w) :: float32[1, 1]
    a = w[None, None]
    # c = composite{tanh(add(mul(i0, i1), i2))}(x, a, b) :: float32[?, ?]
    c, = _k1s(1, x, a, b, _z[0])
    return (c,), None

# k1
def kernel(nt, i0, i1, i2, b0):
    # composite{tanh(add(mul(i0, i1), i2))}
    n0 = i0.shape[0]
    n1 = i0.shape[1]
    if i2.shape[1] != n1:
        raise ValueError('elemwise: input shapes do not match')
    o0 = reuse(b0, (n0, n1))
    for j0 in prange(n0):
        for j1 in range(n1):
            t0 = np.float32(i0[j0, j1] * i1[0, 0])  # mul
            t1 = np.float32(t0 + i2[0, j1])  # add
            t2 = np.float32(tanh32(t1))  # tanh
            o0[j0, j1] = t2
    return (o0,)
'''

GOLDEN_BATCHNORM_FORWARD = '''\
# driver: runs the kernels in order
def run(inputs):
    with np.errstate(all='ignore'):
        x, gamma, beta = inputs
        # a, b = fused_reduce{axis=0; add(i0); add(sqr(i0))}(x) :: float32[?], float32[?]
        a, b = _k0s(1, x, _b[0], _b[1])
        _b[0] = a
        _b[1] = b
        # c = shape(x) :: int64[2]
        c = np.array(x.shape, np.int64)
        # d = subtensor{0}(c) :: int64[]
        d = np.asarray(c[0])
        # e = cast{float32}(d) :: float32[]
        e = R0(d)
        # f = dimshuffle{x}(e) :: float32[1]
        f = e[None]
        # g, h = composite{truediv(i0, i2); truediv(i2, sqrt(add(sub(truediv(i1, i2), sqr(truediv(i0, i2))), i3)))}(a, b, f, 1e-04) :: float32[?], float32[?]
        g, h = R1(a, b, f, _c[0])
        # i = dimshuffle{x,0}(g) :: float32[1, ?]
        i = g[None, :]
        # j = dimshuffle{x,0}(h) :: float32[1, ?]
        j = h[None, :]
        # k = dimshuffle{x,0}(gamma) :: float32[1, ?]
        k = gamma[None, :]
        # l = dimshuffle{x,0}(beta) :: float32[1, ?]
        l = beta[None, :]
        # m = dimshuffle{x,0}(f) :: float32[1, 1]
        m = f[None, :]
        # n = composite{add(mul(mul(sub(i0, i1), truediv(i2, i5)), i3), i4)}(x, i, j, k, l, m) :: float32[?, ?]
        n, = _k11s(1, x, i, j, k, l, m, _out(0, (x.shape[0], x.shape[1]), np.float32))
    return [n]

# compiled driver: the same steps compiled, for calls on inputs of up to 262144 elements, after 16 such calls
def driver(x, gamma, beta, _b, _c, _z, _st):
    # a, b = fused_reduce{axis=0; add(i0); add(sqr(i0))}(x) :: float32[?], float32[?]
    a, b = _k0s(1, x, _b[0], _b[1])
    # c = shape(x) :: int64[2]
    c = np.array(x.shape, np.int64)
    # d = subtensor{0}(c) :: int64[]
    d = np.asarray(c[0])
    # e = cast{float32}(d) :: float32[]
    e, = _k3s(1, d, _b[2])
    # f = dimshuffle{x}(e) :: float32[1]
    f = e[None]
    # g, h = composite{truediv(i0, i2); truediv(i2, sqrt(add(sub(truediv(i1, i2), sqr(truediv(i0, i2))), i3)))}(a, b, f, 1e-04) :: float32[?], float32[?]
    g, h = _k5s(1, a, b, f, _c[0], _b[3], _b[4])
    # i = dimshuffle{x,0}(g) :: float32[1, ?]
    i = g[None, :]
    # j = dimshuffle{x,0}(h) :: float32[1, ?]
    j = h[None, :]
    # k = dimshuffle{x,0}(gamma) :: float32[1, ?]
    k = gamma[None, :]
    # l = dimshuffle{x,0}(beta) :: float32[1, ?]
    l = beta[None, :]
    # m = dimshuffle{x,0}(f) :: float32[1, 1]
    m = f[None, :]
    # n = composite{add(mul(mul(sub(i0, i1), truediv(i2, i5)), i3), i4)}(x, i, j, k, l, m) :: float32[?, ?]
    n, = _k11s(1, x, i, j, k, l, m, _z[0])
    if a.ctypes.data != _b[0].ctypes.data or b.ctypes.data != _b[1].ctypes.data or e.ctypes.data != _b[2].ctypes.data or g.ctypes.data != _b[3].ctypes.data or h.ctypes.data != _b[4].ctypes.data:
        return (n,), (a, b, e, g, h)
    return (n,), None

# k3 (in the compiled driver)
def kernel(nt, i0, b0):
    # cast{float32}
    o0 = reuse(b0, ())
    t0 = np.float32(i0[()])
    o0[()] = t0
    return (o0,)

# k5 (in the compiled driver)
def kernel(nt, i0, i1, i2, i3, b0, b1):
    # composite{truediv(i0, i2); truediv(i2, sqrt(add(sub(truediv(i1, i2), sqr(truediv(i0, i2))), i3)))}
    n0 = i0.shape[0]
    if i1.shape[0] != n0:
        raise ValueError('elemwise: input shapes do not match')
    o0 = reuse(b0, (n0,))
    o1 = reuse(b1, (n0,))
    for j0 in prange(n0):
        t0 = np.float32(i0[j0] / i2[0])  # truediv
        t1 = np.float32(i1[j0] / i2[0])  # truediv
        t2 = np.float32(t0 * t0)  # sqr
        t3 = np.float32(t1 - t2)  # sub
        t4 = np.float32(t3 + i3[0])  # add
        t5 = np.float32(np.sqrt(t4))  # sqrt
        t6 = np.float32(i2[0] / t5)  # truediv
        o0[j0] = t0
        o1[j0] = t6
    return (o0, o1)

# k0
def kernel(nt, i0, b0, b1):
    # add, add over axes (0,) of composite{i0; sqr(i0)}
    n0 = i0.shape[0]
    n1 = i0.shape[1]
    nb = max(1, min(nt, n0))  # row blocks reduced in parallel
    a0 = np.empty((nb, n1), np.float64)
    a0[:] = np.float64(0.0)
    a1 = np.empty((nb, n1), np.float64)
    a1[:] = np.float64(0.0)
    for blk in prange(nb):
        p0 = np.empty((n1,), np.float32)
        p1 = np.empty((n1,), np.float32)
        lo = blk * n0 // nb
        hi = (blk + 1) * n0 // nb
        for r in range(lo, hi, 64):  # a run of rows, summed in float32
            p0[:] = 0
            p1[:] = 0
            e = min(r + 64, hi)
            for j0 in range(r, e, 2):  # two rows a step
                j0b = min(j0 + 1, e - 1)
                pair = j0 + 1 < e  # else j0 is the run's odd last row: counted once
                for j1 in range(n1):
                    t0 = np.float32(i0[j0, j1] * i0[j0, j1])  # sqr
                    u0 = np.float32(i0[j0b, j1] * i0[j0b, j1])  # sqr
                    p0[j1] += i0[j0, j1] + (i0[j0b, j1] if pair else np.float32(0))
                    p1[j1] += t0 + (u0 if pair else np.float32(0))
            for k1 in range(n1):
                a0[blk, k1] += np.float64(p0[k1])
                a1[blk, k1] += np.float64(p1[k1])
    o0 = reuse(b0, (n1,))
    o1 = reuse(b1, (n1,))
    for k1 in range(n1):
        r0 = a0[0, k1]
        for q in range(1, nb):
            r0 += a0[q, k1]
        o0[k1] = np.float32(r0)
        r1 = a1[0, k1]
        for q in range(1, nb):
            r1 += a1[q, k1]
        o1[k1] = np.float32(r1)
    return (o0, o1)

# k3 (numpy)
def vector(i0):
    # cast{float32}
    t1 = cast(i0)
    return np.asarray(t1, np.float32)

# k5 (numpy)
def vector(i0, i1, i2, i3):
    # composite{truediv(i0, i2); truediv(i2, sqrt(add(sub(truediv(i1, i2), sqr(truediv(i0, i2))), i3)))}
    t4 = truediv(i0, i2)
    t5 = truediv(i1, i2)
    t6 = sqr(t4)
    t7 = sub(t5, t6)
    t8 = add(t7, i3)
    t9 = sqrt(t8)
    t10 = truediv(i2, t9)
    return (np.asarray(t4, np.float32), np.asarray(t10, np.float32))

# k11
def kernel(nt, i0, i1, i2, i3, i4, i5, b0):
    # composite{add(mul(mul(sub(i0, i1), truediv(i2, i5)), i3), i4)}
    n0 = i0.shape[0]
    n1 = i0.shape[1]
    if i1.shape[1] != n1 or i2.shape[1] != n1 or i3.shape[1] != n1 or i4.shape[1] != n1:
        raise ValueError('elemwise: input shapes do not match')
    o0 = reuse(b0, (n0, n1))
    for j0 in prange(n0):
        for j1 in range(n1):
            t0 = np.float32(i0[j0, j1] - i1[0, j1])  # sub
            t1 = np.float32(i2[0, j1] / i5[0, 0])  # truediv
            t2 = np.float32(t0 * t1)  # mul
            t3 = np.float32(t2 * i3[0, j1])  # mul
            t4 = np.float32(t3 + i4[0, j1])  # add
            o0[j0, j1] = t4
    return (o0,)
'''

GOLDEN_REDUCTION_WITH_PRODUCER = '''\
# driver: runs the kernels in order
def run(inputs):
    x, m = inputs
    # a = fused_reduce{axis=0,2,3; add(sqr(sub(i0, i1)))}(x, m) :: float32[?]
    a, = _k0s(1, x, m, _out(0, (x.shape[1],), np.float32))
    return [a]

# compiled driver: the same steps compiled, for calls on inputs of up to 262144 elements, after 16 such calls
def driver(x, m, _b, _c, _z, _st):
    # a = fused_reduce{axis=0,2,3; add(sqr(sub(i0, i1)))}(x, m) :: float32[?]
    a, = _k0s(1, x, m, _z[0])
    return (a,), None

# k0
def kernel(nt, i0, i1, b0):
    # add over axes (0, 2, 3) of composite{sqr(sub(i0, i1))}
    n0 = i0.shape[0]
    n1 = i0.shape[1]
    n2 = i0.shape[2]
    n3 = i0.shape[3]
    if i1.shape[1] != n1:
        raise ValueError('reduction: input shapes do not match')
    nb = max(1, min(nt, n0))  # row blocks reduced in parallel
    a0 = np.empty((nb, n1), np.float64)
    a0[:] = np.float64(0.0)
    for blk in prange(nb):
        for j0 in range(blk * n0 // nb, (blk + 1) * n0 // nb):
            for j1 in range(n1):
                s0 = np.float64(0.0)
                for j2 in range(n2):
                    for j3 in range(n3):
                        t0 = np.float32(i0[j0, j1, j2, j3] - i1[0, j1, 0, 0])  # sub
                        t1 = np.float32(t0 * t0)  # sqr
                        s0 += np.float64(t1)
                a0[blk, j1] += s0
    o0 = reuse(b0, (n1,))
    for k1 in range(n1):
        r0 = a0[0, k1]
        for q in range(1, nb):
            r0 += a0[q, k1]
        o0[k1] = np.float32(r0)
    return (o0,)
'''


@pytest.mark.parametrize("build", [fused_chain, batchnorm_forward, reduction_with_producer])
def test_generated_source(build, monkeypatch):
    monkeypatch.setenv("MINIGRAPH_NUM_THREADS", "1")  # no parallel branches in the driver
    monkeypatch.delenv("MINIGRAPH_COMPILED_DRIVER", raising=False)
    inputs, outputs = build()
    f = mg.function(inputs, outputs, mode="numba", rewrites=None)
    assert f.source() == globals()["GOLDEN_" + build.__name__.upper()]
    rng = np.random.default_rng(0)
    values = [rng.standard_normal([3 if s is None else s for s in v.type.shape]).astype("float32") for v in inputs]
    want = mg.function(inputs, outputs, mode="python", rewrites=None)(*values)
    np.testing.assert_allclose(f(*values)[0], want[0], rtol=1e-5, atol=1e-6)
    monkeypatch.setenv("MINIGRAPH_COMPILED_DRIVER", "0")  # and the compiled driver shown beside it
    compiled = mg.function(inputs, outputs, mode="numba", rewrites=None)
    np.testing.assert_allclose(compiled(*values)[0], want[0], rtol=1e-5, atol=1e-6)
    assert compiled._thunk._jit is not None
