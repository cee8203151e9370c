"""Property test: random expression graphs (elementwise, broadcasting, reductions, dot,
indexing, softmax) and their gradients give the same values with and without rewrites
(python reference interpreter, float64).  Run-time lengths of 1 behind static ``None``
shapes are drawn on purpose: they are where shape rewrites could go wrong."""
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minigraph as mg
import minigraph.tensor as T
from minigraph.rewriting import rewrite_graph

UNARY = {
    "tanh": T.tanh, "neg": lambda a: -a, "sqr": T.sqr, "exp_tanh": lambda a: T.exp(T.tanh(a)),
    "sigmoid": T.sigmoid, "abs": T.abs, "log_sq": lambda a: T.log(T.sqr(a) + 1.0),
    "sqrt_abs": lambda a: T.sqrt(T.abs(a) + 0.5), "pow2": lambda a: a ** 2.0, "times1": lambda a: a * 1.0,
    "plus0": lambda a: a + 0.0, "div4": lambda a: a / 4.0, "div3": lambda a: a / 3.0, "negneg": lambda a: -(-a),
    "log_exp": lambda a: T.log(T.exp(T.tanh(a))), "softplus": lambda a: T.log1p(T.exp(a)),
    "log_sigmoid": lambda a: T.log(T.sigmoid(a)),
}
BINARY = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
          "max": T.maximum, "div": lambda a, b: a / (T.sqr(b) + 1.0)}


def _broadcastable(s1, s2):
    try:
        np.broadcast_shapes(s1, s2)
        return True
    except ValueError:
        return False


@st.composite
def programs(draw):
    m = draw(st.integers(1, 3))
    n = draw(st.integers(1, 3))
    p = draw(st.integers(1, 3))
    A, B = T.dmatrix("A"), T.dmatrix("B")
    v = T.dvector("v")
    C = T.dmatrix("C")
    labels = T.lvector("labels")
    pool = [(A, (m, n)), (B, (m, n)), (v, (n,)), (C, (n, p))]
    for _ in range(draw(st.integers(2, 7))):
        kind = draw(st.sampled_from(["unary", "binary", "binary", "reduce", "dot", "index", "shuffle", "softmax",
                                     "nll", "rows", "slice", "reshape"]))
        x, sx = pool[draw(st.integers(0, len(pool) - 1))]
        if kind == "unary":
            pool.append((UNARY[draw(st.sampled_from(sorted(UNARY)))](x), sx))
        elif kind == "binary":
            partners = [(y, sy) for y, sy in pool if _broadcastable(sx, sy)]
            y, sy = partners[draw(st.integers(0, len(partners) - 1))]
            pool.append((BINARY[draw(st.sampled_from(sorted(BINARY)))](x, y), np.broadcast_shapes(sx, sy)))
        elif kind == "reduce" and len(sx) >= 1:
            axis = draw(st.sampled_from([None] + list(range(len(sx)))))
            keep = draw(st.booleans())
            fn = draw(st.sampled_from(["sum", "mean", "max"]))
            out = getattr(T, fn)(x, axis=axis, keepdims=keep)
            shape = np.zeros(sx).sum(axis=axis, keepdims=keep).shape
            pool.append((out, shape))
        elif kind == "dot" and len(sx) == 2:
            partners = [(y, sy) for y, sy in pool if len(sy) in (1, 2) and sy[0] == sx[1]]
            if partners:
                y, sy = partners[draw(st.integers(0, len(partners) - 1))]
                pool.append((T.dot(x, y), sx[:1] + sy[1:]))
        elif kind == "index" and len(sx) == 2 and sx[0] == m:
            pool.append((x[T.arange(x.shape[0]), labels % sx[1]], (sx[0],)))
        elif kind == "shuffle" and len(sx) == 2:
            pool.append((x.T, sx[::-1]))
        elif kind == "shuffle" and len(sx) == 1:
            pool.append((x.dimshuffle("x", 0), (1,) + sx))
        elif kind == "softmax" and len(sx) == 2:
            pool.append((T.log(T.nnet.softmax(x)), sx))
        elif kind == "nll" and len(sx) == 2 and sx[0] == m:
            rows = T.arange(labels.shape[0]) if draw(st.booleans()) else T.arange(x.shape[0])
            pool.append((-T.log(T.nnet.softmax(x))[rows, labels % sx[1]], (m,)))
        elif kind == "rows" and len(sx) == 2:
            pool.append((x[labels % sx[0]], (m,) + sx[1:]))
        elif kind == "slice" and len(sx) >= 1 and sx[0] > 1:
            pool.append((x[1:], (sx[0] - 1,) + sx[1:]))
        elif kind == "reshape" and len(sx) == 2:
            flat = T.reshape(x, (-1,))
            pool.append((T.reshape(flat, (sx[1], sx[0])), sx[::-1]))
    outs = [o for o, _ in pool[4:]][-3:] or [A * 1.0]
    cost = T.sum(outs[-1])
    grads = mg.grad(cost, [A, v], disconnected_inputs="ignore")
    seed = draw(st.integers(0, 2 ** 16))
    rng = np.random.default_rng(seed)
    values = [rng.standard_normal((m, n)), rng.standard_normal((m, n)), rng.standard_normal(n),
              rng.standard_normal((n, p)), rng.integers(0, 3, m)]
    return [A, B, v, C, labels], outs + grads, values


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_rewrites_preserve_values(program):
    inputs, outputs, values = program
    with np.errstate(all="ignore"):
        ref = mg.function(inputs, outputs, mode="python", rewrites=None, on_unused_input="ignore")(*values)
        for pipeline in ("fast_compile", "fast_run"):
            f = mg.function(inputs, outputs, mode="python", rewrites=pipeline, on_unused_input="ignore")
            assert not f.rewrite_log.failures, f.rewrite_log.failures
            got = f(*values)
            for r, g in zip(ref, got):
                assert g.dtype == r.dtype and g.shape == r.shape
                np.testing.assert_allclose(g, r, rtol=1e-9, atol=1e-12, err_msg=f"{pipeline}\n{f.rewrite_log}")
            # the pipeline has reached its fixed point
            again = rewrite_graph(f.fgraph, pipeline)
            assert len(again) == 0, str(again)
