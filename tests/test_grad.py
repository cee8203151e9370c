"""Gradients of every differentiable op against finite differences (float64), second order,
and the ``mg.grad`` API."""
import warnings
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minigraph as mg
import minigraph.tensor as T
from minigraph.graph.basic import Apply, Op
from minigraph.graph.type import TensorType
from minigraph.tensor.basic import as_tensor_variable


def numeric_grad(f, points, eps=1e-6):
    """Central differences of the scalar function ``f`` for every element of every point."""
    grads = []
    for i, p in enumerate(points):
        g = np.zeros_like(p)
        for k in np.ndindex(p.shape):
            plus = [q.copy() for q in points]
            minus = [q.copy() for q in points]
            plus[i][k] += eps
            minus[i][k] -= eps
            g[k] = (float(f(*plus)) - float(f(*minus))) / (2 * eps)
        grads.append(g)
    return grads


def check_grad(fn, points, mode, static=False, rng=None, atol=1e-6, rtol=1e-5):
    """Symbolic gradient of ``sum(fn(*xs) * u)`` (random u) against finite differences."""
    rng = rng or np.random.default_rng(0)
    points = [np.asarray(p, dtype="float64") for p in points]
    xs = [T.tensor("float64", p.shape if static else (None,) * p.ndim, f"x{i}") for i, p in enumerate(points)]
    out = fn(*xs)
    value = mg.function(xs, out, mode=mode, on_unused_input="ignore")(*points)
    u = T.constant(rng.standard_normal(np.shape(value)), dtype="float64")
    cost = T.sum(out * u)
    f = mg.function(xs, cost, mode=mode, on_unused_input="ignore")
    gs = mg.function(xs, mg.grad(cost, xs), mode=mode, on_unused_input="ignore")(*points)
    for x, p, g, n in zip(xs, points, gs, numeric_grad(f, points)):
        assert g.shape == p.shape, (g.shape, p.shape)
        assert g.dtype == np.float64
        np.testing.assert_allclose(g, n, atol=atol, rtol=rtol, err_msg=f"gradient of {x.name}")


def _pos(rng, *shape):
    return rng.uniform(0.5, 2.0, shape)


def _normal(rng, *shape):
    return rng.standard_normal(shape)


def _apart(rng, *shape):
    """Values far from each other and from 0 (no ties for max/abs/clip kinks)."""
    n = int(np.prod(shape))
    vals = (rng.permutation(n) - n / 2 + 0.5) * 0.3 + 0.07
    return vals.reshape(shape)


# (name, fn, input makers); each maker: rng -> array
CASES = [
    ("add3", lambda a, b, c: a + b + c, [lambda r: _normal(r, 2, 3), lambda r: _normal(r, 3), lambda r: _normal(r, 2, 1)]),
    ("sub", lambda a, b: a - b, [lambda r: _normal(r, 2, 3), lambda r: _normal(r, 1, 3)]),
    ("mul3", lambda a, b, c: a * b * c, [lambda r: _normal(r, 2, 3), lambda r: _normal(r, 2, 3), lambda r: _normal(r)]),
    ("div", lambda a, b: a / b, [lambda r: _normal(r, 2, 3), lambda r: _pos(r, 3)]),
    ("pow", lambda a, b: a ** b, [lambda r: _pos(r, 2, 3), lambda r: _normal(r, 2, 3)]),
    ("pow_const", lambda a: a ** 3 + 2 ** a, [lambda r: _normal(r, 4)]),
    ("neg_abs", lambda a: -abs(a), [lambda r: _apart(r, 2, 3)]),
    ("exp", T.exp, [lambda r: _normal(r, 2, 3)]),
    ("expm1", T.expm1, [lambda r: _normal(r, 2, 3)]),
    ("log", T.log, [lambda r: _pos(r, 2, 3)]),
    ("log1p", T.log1p, [lambda r: _pos(r, 2, 3)]),
    ("sqrt", T.sqrt, [lambda r: _pos(r, 2, 3)]),
    ("sqr", T.sqr, [lambda r: _normal(r, 2, 3)]),
    ("tanh", T.tanh, [lambda r: _normal(r, 2, 3)]),
    ("sin_cos", lambda a: T.sin(a) * T.cos(a), [lambda r: _normal(r, 2, 3)]),
    ("sigmoid", T.sigmoid, [lambda r: _normal(r, 2, 3) * 3]),
    ("softplus", T.softplus, [lambda r: _normal(r, 2, 3) * 3]),
    ("maximum", T.maximum, [lambda r: _apart(r, 2, 3), lambda r: _apart(r, 3) + 0.1]),
    ("minimum", T.minimum, [lambda r: _apart(r, 2, 3), lambda r: _apart(r, 2, 3) + 0.1]),
    ("relu", T.nnet.relu, [lambda r: _apart(r, 2, 3)]),
    ("leaky_relu", lambda a: T.nnet.relu(a, 0.1), [lambda r: _apart(r, 2, 3)]),
    ("clip", lambda a: T.clip(a, -0.4, 0.5), [lambda r: _apart(r, 3, 4)]),
    ("clip_bounds", lambda a, lo, hi: T.clip(a, lo, hi), [lambda r: _apart(r, 3, 4), lambda r: np.array(-0.25),
                                                          lambda r: np.array(0.35)]),
    ("switch", lambda a, b: T.switch(a > 0, a * b, b), [lambda r: _apart(r, 2, 3), lambda r: _normal(r, 2, 3)]),
    ("mod", lambda a: a % 1.7, [lambda r: _apart(r, 2, 3) + 0.05]),
    ("cast", lambda a: T.cast(T.cast(a, "float32"), "float64") * 0 + a * a, [lambda r: _normal(r, 3)]),
    ("sum_all", lambda a: a.sum(), [lambda r: _normal(r, 2, 3)]),
    ("sum_axis", lambda a: a.sum(axis=(0, 2)), [lambda r: _normal(r, 2, 3, 2)]),
    ("sum_keepdims", lambda a: a.sum(axis=-1, keepdims=True) * a, [lambda r: _normal(r, 2, 3)]),
    ("mean", lambda a: a.mean(axis=0), [lambda r: _normal(r, 3, 2)]),
    ("var", lambda a: a.var(axis=1, keepdims=True), [lambda r: _normal(r, 2, 4)]),
    ("std", lambda a: a.std(), [lambda r: _normal(r, 2, 4)]),
    ("var_ddof", lambda a: a.var(axis=0, ddof=1), [lambda r: _normal(r, 4, 2)]),
    ("prod", lambda a: a.prod(axis=1), [lambda r: _pos(r, 2, 3)]),
    ("prod_zeros", lambda a: a.prod(axis=1), [lambda r: _normal(r, 4, 3) * np.array([[1, 1, 1], [0, 1, 1], [0, 0, 1],
                                                                                     [1, 0, 1]])]),
    ("prod_all", lambda a: a.prod() * 2, [lambda r: _normal(r, 2, 2) * np.array([[1, 0], [1, 1]])]),
    ("max", lambda a: a.max(axis=0), [lambda r: _apart(r, 3, 4)]),
    ("min_keepdims", lambda a: a.min(axis=-1, keepdims=True), [lambda r: _apart(r, 3, 4)]),
    ("max_all", lambda a: a.max(), [lambda r: _apart(r, 3, 4)]),
    ("dot_mm", T.dot, [lambda r: _normal(r, 2, 3), lambda r: _normal(r, 3, 4)]),
    ("dot_mv", T.dot, [lambda r: _normal(r, 2, 3), lambda r: _normal(r, 3)]),
    ("dot_vm", T.dot, [lambda r: _normal(r, 3), lambda r: _normal(r, 3, 4)]),
    ("dot_vv", T.dot, [lambda r: _normal(r, 3), lambda r: _normal(r, 3)]),
    ("matmul_self", lambda a: a @ a.T, [lambda r: _normal(r, 2, 3)]),
    ("outer", T.outer, [lambda r: _normal(r, 2), lambda r: _normal(r, 3)]),
    ("reshape", lambda a: a.reshape((3, -1)), [lambda r: _normal(r, 2, 3)]),
    ("reshape_sym", lambda a: a.reshape((a.shape[1], a.shape[0] * a.shape[2])), [lambda r: _normal(r, 2, 3, 2)]),
    ("flatten", lambda a: a.flatten(2), [lambda r: _normal(r, 2, 3, 2)]),
    ("dimshuffle", lambda a: a.dimshuffle(1, "x", 0), [lambda r: _normal(r, 2, 3)]),
    ("transpose", lambda a: a.T * 2, [lambda r: _normal(r, 2, 3)]),
    ("repeat_none", lambda a: T.repeat(a, 2), [lambda r: _normal(r, 2, 3)]),
    ("repeat_axis0", lambda a: T.repeat(a, 3, axis=0), [lambda r: _normal(r, 2, 3)]),
    ("repeat_axis_neg", lambda a: a.repeat(2, axis=-1), [lambda r: _normal(r, 2, 3)]),
    ("concatenate", lambda a, b: T.concatenate([a, b, a], axis=1), [lambda r: _normal(r, 2, 3), lambda r: _normal(r, 2, 1)]),
    ("stack", lambda a, b: T.stack([a, b], axis=1), [lambda r: _normal(r, 2, 3), lambda r: _normal(r, 2, 3)]),
    ("stack_scalars", lambda a, b: T.stack([a.sum(), b.max()]), [lambda r: _normal(r, 3), lambda r: _apart(r, 3)]),
    ("slice", lambda a: a[1:, ::-2], [lambda r: _normal(r, 3, 4)]),
    ("int_index", lambda a: a[1, -1] * a[0], [lambda r: _normal(r, 3, 4)]),
    ("sym_slice", lambda a: a[a.shape[0] - 2:, : a.shape[1] - 1], [lambda r: _normal(r, 3, 4)]),
    ("adv_rows", lambda a: a[np.array([0, 2, 2, 1])], [lambda r: _normal(r, 3, 4)]),
    ("adv_nll", lambda a: a[T.arange(a.shape[0]), np.array([1, 0, 3])], [lambda r: _normal(r, 3, 4)]),
    ("adv_nonadjacent", lambda a: a[np.array([0, 1, 1]), :, np.array([1, 1, 0])], [lambda r: _normal(r, 2, 3, 2)]),
    ("adv_slice_first", lambda a: a[1:, np.array([0, 0])], [lambda r: _normal(r, 3, 2)]),
    ("set_subtensor", lambda a, b: T.set_subtensor(a[1:, 0], b), [lambda r: _normal(r, 3, 2), lambda r: _normal(r, 2)]),
    ("inc_subtensor_bcast", lambda a, b: T.inc_subtensor(a[:, 1:], b), [lambda r: _normal(r, 3, 3), lambda r: _normal(r, 2)]),
    ("adv_inc", lambda a, b: T.inc_subtensor(a[np.array([0, 0, 2])], b), [lambda r: _normal(r, 3, 2), lambda r: _normal(r, 3, 2)]),
    ("adv_set", lambda a, b: T.set_subtensor(a[np.array([2, 0]), 1], b), [lambda r: _normal(r, 3, 2), lambda r: _normal(r, 2)]),
    ("alloc", lambda a: T.alloc(a, 3, 2) * T.arange(6).reshape((3, 2)), [lambda r: _normal(r, 2)]),
    ("alloc_sym", lambda a, b: T.alloc(a, b.shape[0], 2) * b.dimshuffle(0, "x"), [lambda r: _normal(r, 1, 2), lambda r: _normal(r, 3)]),
    ("broadcast_to", lambda a: T.broadcast_to(a, (2, 3)), [lambda r: _normal(r, 3)]),
    ("zeros_like", lambda a: T.zeros_like(a) + T.ones_like(a) * a, [lambda r: _normal(r, 3)]),
    ("softmax", T.nnet.softmax, [lambda r: _normal(r, 3, 4)]),
    ("softmax_axis0", lambda a: T.nnet.softmax(a, axis=0), [lambda r: _normal(r, 3, 4)]),
    ("softmax_vector", T.nnet.softmax, [lambda r: _normal(r, 4)]),
    ("log_softmax", T.nnet.log_softmax, [lambda r: _normal(r, 3, 4)]),
    ("cce_labels", lambda a: T.nnet.categorical_crossentropy(T.nnet.softmax(a), np.array([0, 3, 1], "int32")),
     [lambda r: _normal(r, 3, 4)]),
    ("cce_dist", lambda a, t: T.nnet.categorical_crossentropy(T.nnet.softmax(a), t),
     [lambda r: _normal(r, 3, 4), lambda r: _pos(r, 3, 4)]),
    ("binary_crossentropy", lambda a, t: T.nnet.binary_crossentropy(T.sigmoid(a), t),
     [lambda r: _normal(r, 3), lambda r: r.uniform(0, 1, 3)]),
    ("mlp", lambda x, w, b: T.tanh(T.dot(x, w) + b).mean(axis=0), [lambda r: _normal(r, 4, 3), lambda r: _normal(r, 3, 2),
                                                                   lambda r: _normal(r, 2)]),
]


@pytest.mark.parametrize("name,fn,makers", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("static", [False, True], ids=["dynamic", "static"])
def test_grad_matches_finite_differences(name, fn, makers, static):
    """The maths, on the python reference (the backends are compared with it below)."""
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    check_grad(fn, [m(rng) for m in makers], "python", static=static, rng=rng)


# one case per op family: the default run compiles these (numba compiles cost ~1 s a kernel)
PARITY_CASES = ["add3", "div", "pow", "tanh", "softplus", "clip_bounds", "switch", "sum_keepdims", "var", "max", "prod_zeros",
                "dot_mv", "reshape_sym", "repeat_none", "concatenate", "adv_nll", "adv_inc", "log_softmax", "mlp"]


def _parity(mode, cases):
    """The cost and gradients of ``cases`` in one function (one compile), against the python
    reference on the same inputs.  Lengths of 1 are declared (Theano's broadcastable pattern),
    the others unknown, so that no kernel needs the run-time fallback."""
    if mode == "python":
        pytest.skip("python is the reference")
    rng = np.random.default_rng(9)
    inputs, values, outputs, labels = [], [], [], []
    for name, fn, makers in cases:
        points = [np.asarray(m(rng), dtype="float64") for m in makers]
        xs = [T.tensor("float64", tuple(1 if n == 1 else None for n in p.shape), f"{name}_x{i}")
              for i, p in enumerate(points)]
        out = fn(*xs)
        shape = mg.function(xs, out, mode="python", on_unused_input="ignore")(*points).shape
        cost = T.sum(out * T.constant(rng.standard_normal(shape)))
        inputs += xs
        values += points
        outputs += [cost, *mg.grad(cost, xs)]
        labels += [f"{name}: cost"] + [f"{name}: gradient of x{i}" for i in range(len(xs))]
    expected = mg.function(inputs, outputs, mode="python", on_unused_input="ignore")(*values)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a fallback to the interpreter would make this vacuous
        got = mg.function(inputs, outputs, mode=mode, on_unused_input="ignore")(*values)
    for label, g, e in zip(labels, got, expected):
        assert g.dtype == e.dtype and g.shape == e.shape, label
        np.testing.assert_allclose(g, e, rtol=1e-9, atol=1e-12, err_msg=label)


def test_gradients_match_the_reference_on_every_backend(mode):
    """One case per op family, on every backend."""
    _parity(mode, [c for c in CASES if c[0] in PARITY_CASES])


@pytest.mark.slow
def test_all_gradients_match_the_reference_on_every_backend(mode):
    """Every case of the table (the default run covers one case per op family)."""
    _parity(mode, CASES)


@pytest.mark.parametrize("name,fn,makers", CASES, ids=[c[0] for c in CASES])
def test_second_order_matches_finite_differences_of_the_gradient(name, fn, makers):
    """Every gradient graph can be differentiated again: the Hessian-vector product of
    ``sum(fn(*xs) ** 2)`` against central differences of its gradient along v."""
    rng = np.random.default_rng(abs(hash(name) + 1) % 2**32)
    points = [np.asarray(m(rng), dtype="float64") for m in makers]
    xs = [T.tensor("float64", (None,) * p.ndim, f"x{i}") for i, p in enumerate(points)]
    vs = [T.tensor("float64", (None,) * p.ndim, f"v{i}") for i, p in enumerate(points)]
    cost = T.sum(fn(*xs) ** 2)
    gs = mg.grad(cost, xs)
    hv = mg.grad(T.add(*[T.sum(g * v) for g, v in zip(gs, vs)]), xs, disconnected_inputs="ignore")
    grad_f = mg.function(xs, gs, mode="python", on_unused_input="ignore")
    hv_f = mg.function(xs + vs, hv, mode="python", on_unused_input="ignore")
    directions = [rng.standard_normal(p.shape) for p in points]
    eps = 1e-5
    plus = grad_f(*[p + eps * d for p, d in zip(points, directions)])
    minus = grad_f(*[p - eps * d for p, d in zip(points, directions)])
    for i, (h, gp, gm) in enumerate(zip(hv_f(*points, *directions), plus, minus)):
        np.testing.assert_allclose(h, (gp - gm) / (2 * eps), rtol=1e-4, atol=1e-6, err_msg=f"H v for x{i}")


# --- broadcasting patterns (hypothesis) ------------------------------------------------------

@st.composite
def broadcast_pair(draw):
    """Two shapes that broadcast, and how each length is declared: its value, None, or (for
    lengths of 1) None that turns out to be 1 at run time."""
    ndim = draw(st.integers(1, 3))
    full = draw(st.lists(st.integers(2, 3), min_size=ndim, max_size=ndim))
    shapes, statics = [], []
    for _ in range(2):
        nd = draw(st.integers(0, ndim))
        shape = [1 if draw(st.booleans()) else n for n in full[ndim - nd:]]
        static = [s if draw(st.booleans()) else None for s in shape]
        shapes.append(tuple(shape))
        statics.append(tuple(static))
    return shapes, statics


@settings(max_examples=40, deadline=None)
@given(broadcast_pair(), st.sampled_from(["add", "mul", "div", "maximum", "switch"]))
def test_broadcast_gradient_sums_back(pair, opname):
    shapes, statics = pair
    rng = np.random.default_rng(0)
    av = _apart(rng, *shapes[0]) if shapes[0] else np.array(0.7)
    bv = np.asarray(rng.uniform(0.5, 2, shapes[1]) + 0.05)
    a, b = T.tensor("float64", statics[0], "a"), T.tensor("float64", statics[1], "b")
    out = {"add": lambda: a + b, "mul": lambda: a * b, "div": lambda: a / b, "maximum": lambda: T.maximum(a, b),
           "switch": lambda: T.switch(a > 0, a, b)}[opname]()
    expected_shape = np.broadcast_shapes(shapes[0], shapes[1])
    u = rng.standard_normal(expected_shape)
    cost = T.sum(out * u)
    f = mg.function([a, b], cost, mode="python")
    ga, gb = mg.function([a, b], mg.grad(cost, [a, b]), mode="python", on_unused_input="ignore")(av, bv)
    na, nb = numeric_grad(f, [av, bv])
    assert ga.shape == np.shape(av) and gb.shape == bv.shape
    np.testing.assert_allclose(ga, na, atol=1e-6, rtol=1e-5)
    np.testing.assert_allclose(gb, nb, atol=1e-6, rtol=1e-5)


def test_unknown_length_one_at_run_time(mode):
    """A vector of unknown length that is 1 at run time broadcasts, and its gradient is summed."""
    x, b = T.dmatrix("x"), T.dvector("b")
    cost = T.sum((x + b) * x)
    gx, gb = mg.function([x, b], mg.grad(cost, [x, b]), mode=mode)(np.ones((2, 3)), np.array([0.5]))
    np.testing.assert_allclose(gb, [6.0])
    np.testing.assert_allclose(gx, 2 * np.ones((2, 3)) + 0.5)
    # a column that is (2, 1) at run time against a (2, 3) matrix
    c = T.dmatrix("c")
    gc = mg.function([x, c], mg.grad(T.sum(x * c), c), mode=mode)(np.ones((2, 3)) * 2, np.ones((2, 1)))
    np.testing.assert_allclose(gc, [[6.0], [6.0]])


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 3), min_size=1, max_size=3), st.data())
def test_reduction_gradients_any_axes(shape, data):
    axes = data.draw(st.lists(st.integers(-len(shape), len(shape) - 1), unique_by=lambda a: a % len(shape), max_size=len(shape)))
    keepdims = data.draw(st.booleans())
    kind = data.draw(st.sampled_from(["sum", "mean", "max", "var"]))
    rng = np.random.default_rng(1)
    x = _apart(rng, *shape)
    check_grad(lambda a: getattr(a, kind)(axis=tuple(axes) if axes else None, keepdims=keepdims) * 1.5,
               [x], "python", static=data.draw(st.booleans()), rng=rng)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 3), min_size=1, max_size=3), st.integers(1, 3), st.data())
def test_repeat_reshape_join_gradients_unknown_lengths(shape, reps, data):
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape)
    axis = data.draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1)))
    static = data.draw(st.booleans())
    check_grad(lambda a: T.repeat(a, reps, axis=axis), [x], "python", static=static, rng=rng)
    check_grad(lambda a: a.reshape((-1,)).reshape(a.shape), [x], "python", static=static, rng=rng)
    jaxis = data.draw(st.integers(0, len(shape) - 1))
    y_shape = list(shape)
    y_shape[jaxis] = data.draw(st.integers(1, 2))
    check_grad(lambda a, b: T.concatenate([a, b, a], axis=jaxis), [x, rng.standard_normal(y_shape)], "python",
               static=static, rng=rng)


# --- second order -------------------------------------------------------------------------

def test_hessian_vector_product(mode):
    rng = np.random.default_rng(3)
    w, x = T.dvector("w"), T.dmatrix("x")
    v = T.dvector("v")
    cost = T.sum(T.tanh(T.dot(x, w)) ** 2) + T.sum(T.nnet.softmax(x * w) * x) + T.sum(w ** 3)
    g = mg.grad(cost, w)
    hv = mg.grad(T.sum(g * v), w)
    grad_f = mg.function([w, x], g, mode=mode)
    hv_f = mg.function([w, x, v], hv, mode=mode)
    wv, xv, vv = rng.standard_normal(3), rng.standard_normal((4, 3)), rng.standard_normal(3)
    eps = 1e-6
    numeric = (grad_f(wv + eps * vv, xv) - grad_f(wv - eps * vv, xv)) / (2 * eps)
    np.testing.assert_allclose(hv_f(wv, xv, vv), numeric, rtol=1e-5, atol=1e-6)
    # the helper builds the same product
    hv2 = mg.gradient.hessian_vector_product(cost, w, v)[0]
    np.testing.assert_allclose(mg.function([w, x, v], hv2, mode=mode)(wv, xv, vv), numeric, rtol=1e-5, atol=1e-6)


def test_grad_of_grad_through_broadcast_and_indexing():
    rng = np.random.default_rng(4)
    W, b, y = T.dmatrix("W"), T.dvector("b"), T.lvector("y")
    x = T.constant(rng.standard_normal((3, 2)))
    logp = T.nnet.log_softmax(T.dot(x, W) + b)
    cost = -T.mean(logp[T.arange(y.shape[0]), y])
    gb = mg.grad(cost, b)
    second = mg.grad(T.sum(gb ** 2), W)
    f = mg.function([W, b, y], T.sum(mg.grad(cost, b) ** 2), mode="python")
    g2 = mg.function([W, b, y], second, mode="python")
    Wv, bv, yv = rng.standard_normal((2, 4)), rng.standard_normal(4), np.array([0, 3, 1])
    (num,) = numeric_grad(lambda w: f(w, bv, yv), [Wv])
    np.testing.assert_allclose(g2(Wv, bv, yv), num, rtol=1e-5, atol=1e-7)


# --- the grad API ---------------------------------------------------------------------------

def test_consider_constant(mode):
    x = T.dvector("x")
    y = x * 2
    cost = T.sum(y * x)
    g_full = mg.function([x], mg.grad(cost, x), mode=mode)(np.ones(3))
    g_const = mg.function([x], mg.grad(cost, x, consider_constant=[y]), mode=mode)(np.ones(3))
    np.testing.assert_allclose(g_full, 4 * np.ones(3))
    np.testing.assert_allclose(g_const, 2 * np.ones(3))


@pytest.mark.parametrize("setting", ["raise", "warn", "ignore"])
def test_disconnected_inputs(setting, mode):
    x, z = T.dvector("x"), T.dvector("z")
    cost = T.sum(x ** 2)
    if setting == "raise":
        with pytest.raises(ValueError, match="disconnected"):
            mg.grad(cost, [x, z])
        with pytest.raises(ValueError, match="disconnected"):
            mg.grad(cost, z)
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gx, gz = mg.grad(cost, [x, z], disconnected_inputs=setting)
    messages = [str(w.message) for w in caught]
    if setting == "warn":
        assert any("disconnected" in m for m in messages)
    else:
        assert not any("disconnected" in m for m in messages)
    outs = mg.function([x, z], [gx, gz], mode=mode)(np.ones(3), np.ones(2))
    np.testing.assert_allclose(outs[0], 2 * np.ones(3))
    np.testing.assert_array_equal(outs[1], np.zeros(2))


def test_disconnected_through_consider_constant():
    """Blocking the only path makes the input disconnected."""
    x = T.dvector("x")
    y = x * 2
    with pytest.raises(ValueError, match="disconnected"):
        mg.grad(T.sum(y * 3), x, consider_constant=[y])


def test_bad_disconnected_inputs_value():
    x = T.dvector("x")
    with pytest.raises(ValueError, match="disconnected_inputs"):
        mg.grad(T.sum(x), x, disconnected_inputs="maybe")


def test_known_grads_without_cost(mode):
    x = T.dmatrix("x")
    W = T.dmatrix("W")
    h = T.dot(x, W)
    y = T.tanh(h)
    dy = T.dmatrix("dy")
    gW, gx = mg.grad(None, [W, x], known_grads={y: dy})
    rng = np.random.default_rng(5)
    xv, Wv, dyv = rng.standard_normal((2, 3)), rng.standard_normal((3, 4)), rng.standard_normal((2, 4))
    outs = mg.function([x, W, dy], [gW, gx], mode=mode)(xv, Wv, dyv)
    dh = dyv * (1 - np.tanh(xv @ Wv) ** 2)
    np.testing.assert_allclose(outs[0], xv.T @ dh)
    np.testing.assert_allclose(outs[1], dh @ Wv.T)
    # the same as the gradient of sum(y * dy)
    ref = mg.function([x, W, dy], mg.grad(T.sum(y * dy), W), mode=mode)(xv, Wv, dyv)
    np.testing.assert_allclose(outs[0], ref)


def test_known_grads_checks():
    x = T.dvector("x")
    with pytest.raises(ValueError, match="known_grads"):
        mg.grad(None, x)
    with pytest.raises(ValueError, match="dimensions"):
        mg.grad(None, x, known_grads={x * 2: T.dmatrix()})


def test_non_scalar_cost_raises():
    x = T.dvector("x")
    with pytest.raises(TypeError, match="scalar"):
        mg.grad(x * 2, x)


def test_integer_inputs_get_no_gradient(mode):
    x = T.dvector("x")
    i = T.ivector("i")
    cost = T.sum(x * i) + T.sum(T.cast(i, "float64") ** 2)
    with pytest.raises(TypeError, match="integer"):
        mg.grad(cost, i)
    with pytest.raises(TypeError, match="integer"):
        mg.grad(T.sum(i), x)  # an integer cost
    gx = mg.function([x, i], mg.grad(cost, x), mode=mode)(np.ones(3), np.array([1, 2, 3], "int32"))
    np.testing.assert_allclose(gx, [1, 2, 3])
    # gradients never flow into integer tensors inside the graph (indices, casts)
    y = T.lvector("y")
    cost2 = T.sum(x[y] * T.cast(y, "float64"))
    gx2 = mg.function([x, y], mg.grad(cost2, x), mode=mode)(np.ones(3), np.array([2, 2, 0]))
    np.testing.assert_allclose(gx2, [0, 0, 4])


def test_float32_gradient_keeps_dtype(mode):
    x = T.fmatrix("x")
    W = mg.shared(np.ones((3, 2), dtype="float32"), name="W")
    cost = T.mean(T.tanh(T.dot(x, W)) * 0.5)
    gW = mg.grad(cost, W)
    assert gW.dtype == "float32"
    out = mg.function([x], gW, mode=mode)(np.ones((4, 3), "float32"))
    assert out.dtype == np.float32


def test_gradient_is_a_graph_that_prints():
    x = T.dvector("x")
    g = mg.grad(T.sum(T.exp(x)), x)
    assert g.owner is not None


# --- verify_grad ----------------------------------------------------------------------------

def test_verify_grad_accepts_correct_gradients(mode):
    rng = np.random.default_rng(6)
    assert mg.gradient.verify_grad(lambda a, b: T.tanh(T.dot(a, b)), [rng.standard_normal((2, 3)),
                                                                      rng.standard_normal((3, 2))], rng=rng, mode=mode)
    assert mg.verify_grad(lambda a: T.nnet.softmax(a), [rng.standard_normal((2, 3))], rng=1, mode=mode)
    assert mg.verify_grad(T.exp, [rng.standard_normal(3)], rng=np.random.RandomState(0), mode=mode)


@dataclass(frozen=True)
class _BadSquare(Op):
    """x ** 2 whose declared gradient is wrong (x instead of 2 x), for verify_grad to catch."""

    factor: float = 1.0

    def make_node(self, x) -> Apply:
        x = as_tensor_variable(x)
        return Apply(self, [x], [TensorType(x.dtype, x.type.shape)])

    def perform(self, node, inputs):
        return (np.asarray(inputs[0] ** 2, dtype=node.outputs[0].dtype),)

    def grad(self, inputs, outputs, output_grads):
        return [output_grads[0] * inputs[0] * self.factor]


def test_verify_grad_catches_a_wrong_gradient():
    rng = np.random.default_rng(7)
    point = rng.standard_normal((2, 3))
    with pytest.raises(AssertionError, match="finite differences"):
        mg.gradient.verify_grad(lambda a: _BadSquare(1.0)(a), [point], rng=rng, mode="python")
    # the same op with the right factor passes
    assert mg.gradient.verify_grad(lambda a: _BadSquare(2.0)(a), [point], rng=rng, mode="python")


def test_verify_grad_with_integer_points_and_unused_inputs(mode):
    rng = np.random.default_rng(8)
    logits = rng.standard_normal((3, 4)).astype("float32")
    labels = np.array([0, 3, 1])
    assert mg.gradient.verify_grad(lambda a, y: T.nnet.categorical_crossentropy(T.nnet.softmax(a), y),
                                   [logits, labels], rng=rng, mode=mode)
    assert mg.gradient.verify_grad(lambda a, b: a * 2, [np.ones(2), np.ones(3)], rng=rng, mode=mode)


def test_grad_with_respect_to_an_intermediate_variable(mode):
    x = T.dvector("x")
    h = T.tanh(x)
    cost = T.sum(h ** 2)
    gh, gx = mg.grad(cost, [h, x])
    xv = np.array([0.1, -0.3])
    ghv, gxv = mg.function([x], [gh, gx], mode=mode)(xv)
    np.testing.assert_allclose(ghv, 2 * np.tanh(xv))
    np.testing.assert_allclose(gxv, 2 * np.tanh(xv) * (1 - np.tanh(xv) ** 2))
