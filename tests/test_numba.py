"""The Numba backend against the reference interpreter, and its own contracts: buffers,
dtypes, fallbacks, thread settings, debug mode and lowering coverage."""
import importlib
import importlib.util
import warnings
from dataclasses import dataclass

import numpy as np
import pytest

import minigraph as mg
import minigraph.tensor as T
from minigraph.graph.basic import Apply, Op
from minigraph.tensor import elemwise as E
from minigraph.tensor import math as M

pytest.importorskip("numba")

from minigraph.backends.numba import NumbaLinker, lookup  # noqa: E402
from minigraph.backends.numba import scalar as numba_scalar  # noqa: E402


def both(inputs, outputs, values, rewrites="fast_run", **kw):
    """Outputs of the numba and python backends on the same values."""
    f = mg.function(inputs, outputs, mode="numba", rewrites=rewrites, on_unused_input="ignore", **kw)
    g = mg.function(inputs, outputs, mode="python", rewrites=rewrites, on_unused_input="ignore", **kw)
    return f, f(*values), g(*values)


def assert_same(got, want):
    for a, b in zip(got, want):
        assert a.dtype == b.dtype and a.shape == b.shape
        if a.dtype.kind == "f":
            np.testing.assert_allclose(a, b, rtol=2e-5 if a.dtype == np.float32 else 1e-12, atol=1e-6)
        else:
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("rewrites", [None, "fast_run"])
def test_broadcasting_patterns(rng, rewrites):
    x = T.matrix("x")
    row = T.matrix("row", shape=(1, None))
    col = T.matrix("col", shape=(None, 1))
    s = T.scalar("s")
    out = [T.tanh(x * row + col) - s, x / (col + 2), T.maximum(row, col)]
    vals = [rng.standard_normal(sh).astype("float32") for sh in [(3, 4), (1, 4), (3, 1)]] + [np.float32(0.5)]
    _, got, want = both([x, row, col, s], out, vals, rewrites=rewrites)
    assert_same(got, want)


def test_reductions_over_any_axes(rng):
    x = T.tensor4("x")
    v = rng.standard_normal((2, 3, 4, 5)).astype("float32")
    outs = []
    for axis in [None, 0, 1, 3, (0, 2), (0, 2, 3), (1, 3), (1, 2)]:
        outs += [x.sum(axis=axis), x.max(axis=axis), T.sqr(x - 1).sum(axis=axis)]
    outs += [x.min(axis=2), T.prod(x[:, :, :2, :2], axis=(0, 1))]
    _, got, want = both([x], outs, [v])
    assert_same(got, want)


def test_integer_and_bool_dtypes(rng):
    a, b = T.imatrix("a"), T.imatrix("b")  # matrices: vectors run as numpy expressions
    va = rng.integers(-50, 50, (2, 7)).astype("int32")
    vb = rng.integers(1, 9, (2, 7)).astype("int32")
    outs = [a + b, a * b, a // b, a % b, a / b, T.lt(a, b), T.switch(T.gt(a, 0), a, b), a.sum(), T.eq(a, b).sum(),
            T.cast(a, "float32") * 0.5, T.invert(T.lt(a, 0)), a.max()]
    _, got, want = both([a, b], outs, [va, vb])
    assert_same(got, want)


def test_unary_ops_and_stable_functions():
    x = T.dmatrix("x")
    v = np.array([[-800.0, -3.0, -0.5, 0.0, 0.25, 2.0, 700.0]])
    outs = [T.sigmoid(x), T.softplus(x), T.abs(x), T.sgn(x), T.floor(x), T.ceil(x), T.exp(x / 100), T.expm1(x / 100),
            T.log(T.abs(x) + 1), T.log1p(T.abs(x)), T.sqrt(T.abs(x)), T.sin(x), T.cos(x), T.clip(x, -1, 1),
            x ** 2, T.minimum(x, 0.1)]
    _, got, want = both([x], outs, [v])
    assert_same(got, want)


def test_nan_propagates_through_max_and_maximum():
    x = T.dmatrix("x")
    v = np.array([[1.0, np.nan, 3.0]])
    _, got, want = both([x], [x.max(), T.maximum(x, 2.0), T.nnet.softmax(x)], [v])
    for a, b in zip(got, want):
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))


def test_softmax_logsoftmax_and_crossentropy(rng, ):
    x = T.matrix("x")
    y = T.ivector("y")
    xv = (rng.standard_normal((6, 5)) * 30).astype("float32")
    yv = rng.integers(0, 5, 6).astype("int32")
    p = T.nnet.softmax(x)
    cost = -T.mean(T.log(p)[T.arange(y.shape[0]), y])
    outs = [p, T.nnet.log_softmax(x), cost, mg.grad(cost, x), T.nnet.softmax(x.T)]
    _, got, want = both([x, y], outs, [xv, yv])
    assert_same(got, want)


def test_dot_with_transposed_operands_and_vectors(rng):
    a, b, v = T.matrix("a"), T.matrix("b"), T.vector("v")
    av = rng.standard_normal((4, 3)).astype("float32")
    bv = rng.standard_normal((5, 3)).astype("float32")
    vv = rng.standard_normal(3).astype("float32")
    outs = [T.dot(a, b.T), T.dot(a.T, a), T.dot(a, v), T.dot(v, b.T), T.dot(v, v)]
    _, got, want = both([a, b, v], outs, [av, bv, vv])
    assert_same(got, want)


def test_views_and_shape_ops(rng):
    x = T.tensor3("x")
    i = T.lscalar("i")
    xv = rng.standard_normal((2, 3, 4)).astype("float32")
    outs = [x.reshape((6, 4)), x.dimshuffle(2, 0, 1), x[1], x[:, 1:, ::2], x[i, :, i:], x.shape, x.flatten(),
            T.concatenate([x, x], axis=1), T.repeat(x, 2, axis=0), x.argmax(axis=1), T.arange(i, 10, 2),
            T.zeros_like(x) + 1, T.set_subtensor(x[:, 0], 5.0), T.inc_subtensor(x[0, 1:], 1.0),
            x[T.arange(2), 1], x.dimshuffle(0, "x", 1, 2)[:, 0], x.mean(axis=(0, 2), keepdims=True)]
    _, got, want = both([x, i], outs, [xv, 1])
    assert_same(got, want)


def test_scalars_zero_size_and_empty_reductions(rng):
    s = T.dscalar("s")
    x = T.matrix("x")
    _, got, want = both([s, x], [s * 2 + 1, T.exp(s), x.sum(axis=0), x * 2, x.sum()],
                        [np.float64(1.5), np.zeros((0, 3), "float32")])
    assert_same(got, want)
    f = mg.function([x], x.max(axis=0), mode="numba")
    with pytest.raises(ValueError):
        f(np.zeros((0, 3), "float32"))


def test_shape_errors_name_the_node():
    a, b = T.matrix("a"), T.matrix("b")
    f = mg.function([a, b], T.dot(a, b) + 1, mode="numba")
    with pytest.raises(ValueError, match="dot"):
        f(np.ones((2, 3), "float32"), np.ones((4, 2), "float32"))
    g = mg.function([a, b], a + b, mode="numba")
    with pytest.raises(ValueError, match="add|broadcast"):
        g(np.ones((2, 3), "float32"), np.ones((4, 3), "float32"))


def test_run_time_length_one_broadcasts_like_numpy():
    a, b = T.matrix("a"), T.matrix("b")  # lengths unknown statically; b has 1 row at run time
    f = mg.function([a, b], a * b, mode="numba")
    av, bv = np.arange(6, dtype="float32").reshape(2, 3), np.array([[1, 2, 3]], "float32")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.testing.assert_array_equal(f(av, bv), av * bv)


def test_float32_stays_float32():
    x = T.fmatrix("x")
    out = T.tanh(x * 0.1 + 1.5) / 3 - T.exp(-x)
    f = mg.function([x], [out, out.sum(axis=1)], mode="numba")
    v = np.linspace(-2, 2, 12, dtype="float32").reshape(3, 4)
    r = f(v)
    assert all(a.dtype == np.float32 for a in r)
    src = f.source()
    kernels = src[src.index("def kernel"):]
    # every float literal in a float32 kernel is typed; no float64 arithmetic except the
    # commented accumulators of reductions
    import re

    for lit in re.findall(r"(?<![\w.(])(\d+\.\d+)(?!\w)", kernels):
        context = kernels[max(0, kernels.index(lit) - 12):kernels.index(lit)]
        assert "float" in context, f"untyped literal {lit} in {context!r}"
    assert "float64" not in kernels.replace("np.float64(0.0)", "").replace("np.float64(", "").replace(
        "np.float64)", "") or "accumulate" in kernels
    want = (np.tanh(v * np.float32(0.1) + np.float32(1.5)) / np.float32(3) - np.exp(-v)).astype("float32")
    np.testing.assert_allclose(r[0], want, rtol=2e-6, atol=1e-6)  # float32 rounding (tanh within 1 ulp)


def test_outputs_never_alias_buffers_and_intermediates_are_reused(rng):
    x = T.matrix("x")
    h = T.tanh(x) + 1
    out = [h * 2, (h * 3).sum(axis=0)]
    f = mg.function([x], out, mode="numba", rewrites=None)
    v1 = rng.standard_normal((3, 4)).astype("float32")
    r1 = f(v1)
    kept = [a.copy() for a in r1]
    buffers = list(f._thunk._ns["_b"])
    assert buffers, "intermediates should have buffers"
    r2 = f(v1 + 1)
    for a, b in zip(r1, kept):
        np.testing.assert_array_equal(a, b)  # the second call did not overwrite the first results
    assert all(a is not b for a, b in zip(r1, r2))
    assert [id(b) for b in f._thunk._ns["_b"]] == [id(b) for b in buffers]  # same buffers reused


def test_shared_updates(mode, rng):
    w = mg.shared(np.ones((3, 2), "float32"), name="w")
    x = T.matrix("x")
    cost = T.sqr(T.dot(x, w)).sum()
    f = mg.function([x], cost, updates=[(w, w - 0.1 * mg.grad(cost, w))], mode=mode)
    xv = rng.standard_normal((4, 3)).astype("float32")
    w0 = w.get_value()
    c1 = f(xv)
    w1 = w.get_value()  # a copy: later calls do not change it
    w1_copy = w1.copy()
    f(xv)
    np.testing.assert_array_equal(w1, w1_copy)
    np.testing.assert_allclose(w1, w0 - 0.1 * 2 * xv.T @ (xv @ w0), rtol=1e-5)
    np.testing.assert_allclose(w.get_value(), w1 - 0.1 * 2 * xv.T @ (xv @ w1), rtol=1e-5)
    assert np.isfinite(c1)


def test_update_written_in_place_when_marked(rng):
    w = mg.shared(np.ones((3, 2), "float32"), name="w")
    x = T.matrix("x")
    cost = T.sqr(T.dot(x, w)).sum()
    f = mg.function([x], cost, updates=[(w, w - 0.1 * mg.grad(cost, w))], mode="numba")
    held = w.get_value(borrow=True)
    f(rng.standard_normal((4, 3)).astype("float32"))
    if getattr(f.fgraph, "inplace_updates", ()):
        assert w.get_value(borrow=True) is held  # no new weight buffer per step
    else:
        assert w.get_value(borrow=True) is not held


@pytest.mark.parametrize("setting", ["off", "0"])
def test_elementwise_in_place_writes_through_the_input(setting, monkeypatch, rng):
    """A loop that overwrites one of its inputs stores through that input's own name: through
    another name the compiler cannot tell that the two arrays are one, and its loop runs
    without vector instructions (several times slower).  The update lands in the shared
    variable's own array, with the reference's values, on either driver."""
    monkeypatch.setenv("MINIGRAPH_COMPILED_DRIVER", setting)
    w = mg.shared(rng.standard_normal((6, 5)).astype("float32"), name="w")
    x = T.fmatrix("x")
    f = mg.function([x], [], updates=[(w, w * 0.9 + T.tanh(x))], mode="numba")
    assert f.fgraph.inplace_updates
    kernel = f._thunk.kernels()[0].source
    assert "o0 = i0  # in place" in kernel and "i0[j0, j1] = " in kernel and "o0[j0, j1]" not in kernel
    held, before = w.get_value(borrow=True), w.get_value()
    xv = rng.standard_normal((6, 5)).astype("float32")
    f(xv)
    assert w.get_value(borrow=True) is held
    np.testing.assert_allclose(held, before * np.float32(0.9) + np.tanh(xv), rtol=1e-5, atol=1e-6)


def test_source_escapes_names_and_matches_listing():
    x = T.matrix("x'; import os\n#")
    y = T.matrix("weights")
    two = T.constant(np.float32(2), name="two\nimport sys")
    f = mg.function([x, y], T.tanh(T.dot(x, y)) * two, mode="numba", rewrites=None)
    src = f.source()
    assert "import os\n" not in src and "x'; import os" not in src and "\nimport sys" not in src
    compile(src, "<source>", "exec")  # the generated text is valid Python
    assert "weights" in src
    listing = mg.printing.listing(f)
    assert "weights" in listing
    f(np.ones((2, 2), "float32"), np.ones((2, 2), "float32"))


def test_num_threads_setting(monkeypatch):
    from minigraph.backends.numba.linker import num_threads

    monkeypatch.setenv("MINIGRAPH_NUM_THREADS", "1")
    assert num_threads() == 1
    x = T.matrix("x")
    f = mg.function([x], x * 2, mode="numba")
    assert "_k0p" not in f.source().split("# k")[0] or "if " not in f.source().split("# k")[0]
    monkeypatch.setenv("MINIGRAPH_NUM_THREADS", "many")
    with pytest.raises(ValueError, match="MINIGRAPH_NUM_THREADS"):
        num_threads()


def test_parallel_variants_match_the_reference(monkeypatch, rng):
    import numba

    from minigraph.backends.numba import linker

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("one thread only")
    monkeypatch.setenv("MINIGRAPH_NUM_THREADS", "2")
    monkeypatch.setattr(linker, "PARALLEL_THRESHOLD", 1)  # every loop takes its prange variant
    x = T.ftensor3("x")
    outs = [T.tanh(x) * 2, x.sum(axis=0), x.sum(axis=(1, 2)), T.sqr(x - 1).sum(axis=(0, 2)), x.max(axis=0),
            T.nnet.softmax(x.reshape((x.shape[0], -1)))]
    f, got, want = both([x], outs, [rng.standard_normal((5, 3, 4)).astype("float32")])
    assert_same(got, want)
    assert "_k" in f.source() and "p(_nt" in f.source()


def test_debug_mode_names_the_first_differing_node(monkeypatch):
    x = T.matrix("x")
    f = mg.function([x], (T.exp(x) + 1).sum(), mode="debug", rewrites=None)
    assert np.isclose(f(np.zeros((1, 3), "float32")), 6.0)
    monkeypatch.setitem(numba_scalar._UNARY_UFUNC, E.Exp, "np.exp({0}) * 2")  # a wrong lowering
    g = mg.function([x], (T.exp(x) + 1).sum(), mode="debug", rewrites=None)
    from minigraph.backends.debug import DebugModeError

    with pytest.raises(DebugModeError, match=r"^debug mode: exp"):
        g(np.zeros((1, 3), "float32"))


def _concrete_ops():
    from minigraph.graph.basic import Op

    for mod in ["minigraph.tensor", "minigraph.tensor.nnet", "minigraph.tensor.nnet.bn", "minigraph.tensor.nnet.conv",
                "minigraph.tensor.signal", "minigraph.random", "minigraph.graph.opfromgraph"]:
        try:
            importlib.import_module(mod)
        except ImportError:
            pass
    seen, stack = [], list(Op.__subclasses__())
    while stack:
        cls = stack.pop()
        if cls not in seen:
            seen.append(cls)
            stack.extend(cls.__subclasses__())
    return [c for c in seen if c.__module__.startswith("minigraph.") and not c.__name__.startswith("_")]


#: abstract bases, never put in a graph
ABSTRACT = {"Reduce"}


def test_every_op_has_a_lowering():
    from minigraph.backends.numba.registry import LOWERINGS
    from minigraph.graph.opfromgraph import OpFromGraph

    missing = {c.__name__ for c in _concrete_ops()
               if not any(k in LOWERINGS for k in c.__mro__) and not issubclass(c, OpFromGraph)}
    missing -= ABSTRACT
    if importlib.util.find_spec("minigraph.backends.numba.conv") is None:
        # convolution and pooling lowerings live in backends/numba/conv.py (issue 9)
        missing = {n for n in missing if "Conv" not in n and "Pool" not in n}
    assert not missing, f"ops without a numba lowering: {sorted(missing)}"


@dataclass(frozen=True)
class Twice(Op):
    """An op with no numba lowering: it must run its numpy perform, with a warning."""

    def make_node(self, x):
        x = T.as_tensor_variable(x)
        return Apply(self, [x], [x.type])

    def perform(self, node, inputs):
        return (inputs[0] * 2,)


def test_fallback_warns_and_still_computes():
    x = T.matrix("x")
    with pytest.warns(UserWarning, match="no lowering for Twice"):
        f = mg.function([x], Twice()(x) + 1, mode="numba")
    value = np.arange(6, dtype="float32").reshape(2, 3)
    np.testing.assert_array_equal(f(value), value * 2 + 1)
    assert [k.kind for k in f._thunk.kernels()].count("fallback") == 1


def test_random_draws_run_through_numpy_without_warning():
    srng = mg.RandomStreams(1)
    x = T.matrix("x")
    mask = srng.binomial(x.shape, p=0.5, dtype="float32")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        f = mg.function([x], x * mask, mode="numba")
    out = f(np.ones((4, 5), "float32"))
    assert set(np.unique(out)) <= {0.0, 1.0}
    assert "random" in [k.kind for k in f._thunk.kernels()]


def test_opfromgraph_is_inlined(rng):
    from minigraph.graph.opfromgraph import OpFromGraph

    a, b = T.vector("a"), T.vector("b")
    axpy = OpFromGraph([a, b], [2 * a + b], name="axpy")
    x, y = T.vector("x"), T.vector("y")
    f, got, want = both([x, y], [axpy(x, y) * 3], [np.ones(3, "float32"), np.arange(3, dtype="float32")],
                        rewrites=None)
    assert_same(got, want)
    assert all(k.kind != "fallback" for k in f._thunk.kernels())


def test_vector_ops_run_as_numpy_expressions(rng):
    v, m = T.vector("v"), T.matrix("m")
    f, got, want = both([v, m], [T.tanh(v) * 2, m * v], [rng.standard_normal(3).astype("float32"),
                                                         rng.standard_normal((2, 3)).astype("float32")],
                        rewrites=None)
    assert_same(got, want)
    kinds = [k.kind for k in f._thunk.kernels()]
    assert "vector" in kinds and "elemwise" in kinds and "fallback" not in kinds


def test_vector_composite_is_bit_identical_to_the_reference_and_shown(rng, monkeypatch):
    """A fused op on vectors runs as straight-line numpy, one call per step of its program:
    the reference's arithmetic exactly, its source in ``f.source()``, and no warnings (in the
    Python driver: the compiled one runs it as a loop)."""
    monkeypatch.setenv("MINIGRAPH_COMPILED_DRIVER", "off")
    v = T.vector("v")
    w = T.vector("w")
    outs = [T.sqrt(v / w + 1e-3) * T.exp(-w), T.log(v) - w]  # fused into one two-output composite
    values = [np.abs(rng.standard_normal(50)).astype("float32"), rng.standard_normal(50).astype("float32")]
    values[0][:3] = [0.0, -1.0, np.inf]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        f, got, want = both([v, w], outs, values)
    for a, b in zip(got, want):
        assert a.dtype == b.dtype == np.float32
        np.testing.assert_array_equal(a, b)
    records = [k for k in f._thunk.kernels() if k.kind == "vector"]
    assert records and all(k.source and k.source in f.source() for k in records)
    assert "(numpy)" in f.source()


def test_long_vector_programs_are_compiled(rng):
    """A fused program on vectors long enough that numpy's per-step calls would cost more
    than one compiled call runs as a kernel; a short one stays numpy."""
    from minigraph.backends.numba.lowerings import VECTOR_STEPS_COMPILED

    v = T.vector("v")
    long_expr, short_expr = v, T.exp(v) + 1
    for k in range(VECTOR_STEPS_COMPILED):
        long_expr = T.sqrt(long_expr * 0.5 + (k + 1))
    f, got, want = both([v], [long_expr, short_expr], [np.abs(rng.standard_normal(40)).astype("float32")])
    assert_same(got, want)
    kinds = sorted(k.kind for k in f._thunk.kernels() if k.kind in ("vector", "elemwise"))
    assert kinds == ["elemwise", "vector"], kinds


def test_tanh_of_float32_is_correctly_rounded():
    """The kernels' float32 tanh (arithmetic only, so that loops vectorize) against tanh in
    float64 rounded to float32, over every scale from subnormal to saturated."""
    rng = np.random.default_rng(7)
    xs = np.concatenate([rng.standard_normal(200_000) * s for s in (1e-30, 1e-8, 1e-4, 1e-2, 0.3, 1, 3, 6, 9.1, 30)])
    xs = np.concatenate([xs, [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 9.0, 9.09, 9.11, 88.0]])
    xs = xs.astype("float32")[:, None]
    x = T.fmatrix("x")  # (a matrix: vectors run through numpy's tanh)
    f = mg.function([x], T.tanh(x), mode="numba")
    assert [k.kind for k in f._thunk.kernels()] == ["elemwise"] and "tanh32" in f.source()
    got = f(xs)
    want = np.tanh(xs.astype("float64")).astype("float32")
    np.testing.assert_array_equal(got, want)  # NaN where NaN, and equal bits elsewhere...
    np.testing.assert_array_equal(np.signbit(got), np.signbit(want))  # ...down to the sign of zero


def test_kernel_arithmetic_rounds_each_step_beside_tanh():
    """tanh32 may fuse its own multiply-adds; the kernel it is inlined into may not: its float32
    products and sums round one by one, as numpy's do."""
    rng = np.random.default_rng(3)
    x, y, z = (T.fmatrix(n) for n in "xyz")
    f = mg.function([x, y, z], T.tanh(x) * y + z, mode="numba")
    assert [k.kind for k in f._thunk.kernels()] == ["elemwise"]  # one loop: tanh32 and the rest
    xv, yv, zv = (rng.standard_normal((64, 1000)).astype("float32") for _ in range(3))
    got = f(xv, yv, zv)
    tv = np.tanh(xv.astype("float64")).astype("float32")  # (the kernel's tanh: correctly rounded)
    fused = (tv.astype("float64") * yv + zv).astype("float32")
    assert np.count_nonzero(fused != tv * yv + zv) > 100  # (inputs where a fused multiply-add differs)
    np.testing.assert_array_equal(got, tv * yv + zv)


def test_linker_is_used_directly():
    from minigraph.graph.fg import FunctionGraph

    x = T.matrix("x")
    fg = FunctionGraph([x], [x * 2])
    thunk = NumbaLinker(fg)
    np.testing.assert_array_equal(thunk([np.arange(3, dtype="float32").reshape(1, 3)])[0], [[0, 2, 4]])
    assert "def run(inputs)" in thunk.source()


def test_outputs_reused_only_once_the_user_drops_them():
    x = T.fmatrix("x")
    f = mg.function([x], x * 2, mode="numba")
    v = np.ones((3, 4), "float32")
    held = [f(v * k) for k in range(4)]
    assert len({id(a) for a in held}) == 4
    assert [float(a[0, 0]) for a in held] == [0.0, 2.0, 4.0, 6.0]  # none overwritten
    del held
    ids = {id(f(v)) for _ in range(5)}  # each result dropped at once: its array serves again
    assert len(ids) == 1


@pytest.mark.parametrize("given", [None, "ACTIVE"])
def test_openmp_threads_do_not_spin_unless_asked(given):
    """The backend asks OpenMP to put idle threads to sleep (they would take BLAS's cores),
    and leaves a policy the user chose alone."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if given:
        env["OMP_WAIT_POLICY"] = given
    code = "import os, minigraph.backends.numba; print(os.environ['OMP_WAIT_POLICY'])"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == (given or "PASSIVE")


def test_column_sums_round_once(rng):
    """A sum over axis 0 adds runs of 64 rows in float32 and the runs in float64: within one
    unit in the last place of the exact sum, where numpy's float32 sum drifts row by row."""
    x = T.matrix("x")
    f = mg.function([x], x.sum(axis=0), mode="numba")
    v = (0.1 + 0.01 * rng.standard_normal((100_000, 3))).astype("float32")
    exact = v.astype(np.float64).sum(axis=0)
    assert np.all(np.abs(f(v) - exact) <= np.spacing(exact.astype(np.float32)))


@pytest.mark.parametrize("threads", [1, 2])
def test_column_sums_count_every_row_once(rng, monkeypatch, threads):
    """Column sums take rows two at a time within runs of 64, a run's odd last row paired with
    itself and counted once: on small integers (exact in float32) every row count around those
    steps, in one or two blocks of rows, with a fused producer and kept axes after the first,
    gives numpy's sums exactly."""
    import numba

    from minigraph.backends.numba import linker

    if numba.config.NUMBA_NUM_THREADS < threads:
        pytest.skip("one thread only")
    monkeypatch.setenv("MINIGRAPH_NUM_THREADS", str(threads))
    monkeypatch.setattr(linker, "PARALLEL_THRESHOLD", 1)  # two threads: two blocks of rows
    x, y = T.ftensor3("x"), T.ftensor3("y")
    f = mg.function([x, y], [x.sum(axis=0), (x * y + 1).sum(axis=0)], mode="numba")
    for rows in (1, 2, 3, 63, 64, 65, 66, 129, 131):
        xv, yv = (rng.integers(-4, 5, (rows, 3, 5)).astype("float32") for _ in range(2))
        sums, products = f(xv, yv)
        np.testing.assert_array_equal(sums, xv.sum(axis=0), err_msg=f"{rows} rows")
        np.testing.assert_array_equal(products, (xv * yv + 1).sum(axis=0), err_msg=f"{rows} rows")


def test_vector_programs_with_logical_ops(rng, monkeypatch):
    """And / Or steps of a fused program on vectors get names Python accepts (``and`` is a
    keyword) in the generated numpy function and the compiled driver's loop alike."""
    from minigraph.tensor import elemwise as E

    x, y = T.vector("x"), T.vector("y")
    both_positive = E.Elemwise(E.And())(T.gt(x, 0), T.gt(y, 0))
    either_positive = E.Elemwise(E.Or())(T.gt(x, 0), T.gt(y, 0))
    values = [rng.standard_normal(9).astype("float32"), rng.standard_normal(9).astype("float32")]
    want = [(values[0] > 0) & (values[1] > 0), (values[0] > 0) | (values[1] > 0)]
    for setting in ("off", "0"):
        monkeypatch.setenv("MINIGRAPH_COMPILED_DRIVER", setting)
        f = mg.function([x, y], [both_positive, either_positive], mode="numba")
        for got, w in zip(f(*values), want):
            np.testing.assert_array_equal(got, w)
