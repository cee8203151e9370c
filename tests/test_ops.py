"""Forward values of every op family against numpy, in every backend mode."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minigraph as mg
import minigraph.tensor as T


def run(mode, inputs, outputs, *values):
    """Compile and call once."""
    return mg.function(inputs, outputs, mode=mode)(*values)


def f64(rng, *shape):
    return rng.standard_normal(shape)


def f32(rng, *shape):
    return rng.standard_normal(shape).astype("float32")


# --- elementwise ---------------------------------------------------------------------------

UNARY = [
    ("neg", lambda x: -x, np.negative, None),
    ("abs", abs, np.abs, None),
    ("exp", T.exp, np.exp, None),
    ("log", T.log, np.log, "pos"),
    ("log1p", T.log1p, np.log1p, "pos"),
    ("expm1", T.expm1, np.expm1, None),
    ("sqrt", T.sqrt, np.sqrt, "pos"),
    ("sqr", T.sqr, np.square, None),
    ("tanh", T.tanh, np.tanh, None),
    ("sin", T.sin, np.sin, None),
    ("cos", T.cos, np.cos, None),
    ("sigmoid", T.sigmoid, lambda a: 1 / (1 + np.exp(-a)), None),
    ("softplus", T.softplus, lambda a: np.log1p(np.exp(a)), None),
    ("sgn", T.sgn, np.sign, None),
    ("floor", T.floor, np.floor, None),
    ("ceil", T.ceil, np.ceil, None),
    ("relu", T.nnet.relu, lambda a: np.maximum(a, 0), None),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_unary(dtype, mode, rng):
    """Every unary op in one function (one compile per backend)."""
    x = T.matrix("x", dtype=dtype)
    xv = rng.standard_normal((3, 4)).astype(dtype)
    pos = np.abs(xv) + np.asarray(0.1, dtype)
    outs = run(mode, [x], [fn(abs(x) + 0.1) if domain == "pos" else fn(x) for _, fn, _, domain in UNARY], xv)
    for (name, _, ref, domain), out in zip(UNARY, outs):
        expected = ref(pos if domain == "pos" else xv)
        assert out.dtype == dtype, name
        np.testing.assert_allclose(out, expected, rtol=1e-5 if dtype == "float32" else 1e-12, atol=1e-6, err_msg=name)


BINARY = [
    ("add", lambda a, b: a + b, np.add),
    ("sub", lambda a, b: a - b, np.subtract),
    ("mul", lambda a, b: a * b, np.multiply),
    ("div", lambda a, b: a / b, np.true_divide),
    ("pow", lambda a, b: abs(a) ** b, lambda a, b: np.abs(a) ** b),
    ("maximum", T.maximum, np.maximum),
    ("minimum", T.minimum, np.minimum),
    ("lt", lambda a, b: a < b, np.less),
    ("le", lambda a, b: a <= b, np.less_equal),
    ("gt", lambda a, b: a > b, np.greater),
    ("ge", lambda a, b: a >= b, np.greater_equal),
    ("eq", T.eq, np.equal),
    ("neq", T.neq, np.not_equal),
    ("mod", lambda a, b: a % b, np.mod),
    ("floordiv", lambda a, b: a // b, np.floor_divide),
]


@pytest.mark.parametrize("shapes", [((3, 4), (3, 4)), ((3, 4), (4,)), ((3, 1), (1, 4)), ((), (3,))],
                         ids=["same", "row", "outer", "scalar"])
def test_binary_broadcasting(shapes, mode, rng):
    sa, sb = shapes
    a, b = T.tensor("float64", (None,) * len(sa), "a"), T.tensor("float64", (None,) * len(sb), "b")
    av, bv = rng.standard_normal(sa), rng.standard_normal(sb)
    bv = np.where(np.abs(bv) < 0.1, 0.5, bv)  # no division by ~0 (mod, floordiv)
    outs = run(mode, [a, b], [fn(a, b) for _, fn, _ in BINARY], av, bv)
    for (name, _, ref), out in zip(BINARY, outs):
        expected = ref(av, bv)
        assert out.dtype == expected.dtype, name
        assert out.shape == expected.shape, name
        np.testing.assert_allclose(out, expected, rtol=1e-12, err_msg=name)


_UPCAST_OPS = {"add": np.add, "mul": np.multiply, "sub": np.subtract, "true_div": np.true_divide,
               "int_div": np.floor_divide, "mod": np.mod, "maximum": np.maximum, "lt": np.less}


_UPCAST_PAIRS = [("int32", "int32"), ("int32", "int64"), ("int8", "int16"), ("int32", "float32"), ("float32", "float64"),
                 ("uint8", "int8"), ("bool", "int32"), ("int64", "float32")]


def test_dtype_upcasting_between_tensors(mode):
    """Tensor-tensor arithmetic follows numpy's result dtype, values included (one function for
    every dtype pair and op, so one compile per backend)."""
    inputs, values, syms, cases = [], [], [], []
    for da, db in _UPCAST_PAIRS:
        a, b = T.vector(f"a_{da}", dtype=da), T.vector(f"b_{db}", dtype=db)
        av, bv = np.array([3, 1, 0, 1], dtype=da), np.array([2, 1, 1, 1], dtype=db)
        inputs += [a, b]
        values += [av, bv]
        for name, ref in _UPCAST_OPS.items():
            if name == "sub" and "bool" in (da, db):
                continue  # numpy refuses bool subtraction too
            syms.append(getattr(T, name)(a, b))
            cases.append((f"{name}({da}, {db})", ref(av, bv)))
    outs = run(mode, inputs, syms, *values)
    for (label, expected), sym, out in zip(cases, syms, outs):
        assert sym.dtype == str(expected.dtype), label
        assert out.dtype == expected.dtype, label
        np.testing.assert_array_equal(out, expected, err_msg=label)


_DTYPES = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "float32", "float64"]
_OPS = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "true_div": np.true_divide, "int_div": np.floor_divide,
        "mod": np.mod, "pow": np.power, "maximum": np.maximum, "lt": np.less, "eq": np.equal}


@settings(max_examples=50, deadline=None)
@given(st.sampled_from(_DTYPES), st.sampled_from(_DTYPES), st.sampled_from(sorted(_OPS)))
def test_result_dtype_of_any_pair_follows_numpy(da, db, op):
    """The static dtype of every binary op on any pair of dtypes is numpy's."""
    with np.errstate(all="ignore"):
        try:
            expected = _OPS[op](np.ones(1, da), np.ones(1, db)).dtype
        except TypeError:  # numpy refuses (bool - bool, ...): so do we
            with pytest.raises(TypeError):
                getattr(T, op)(T.vector(dtype=da), T.vector(dtype=db))
            return
    assert getattr(T, op)(T.vector(dtype=da), T.vector(dtype=db)).dtype == str(expected)


@settings(max_examples=50, deadline=None)
@given(st.sampled_from(_DTYPES), st.sampled_from([0, 1, 3, 0.5, 2.0, True]), st.sampled_from(sorted(_OPS)),
       st.booleans())
def test_result_dtype_with_python_scalars_follows_numpy(dtype, scalar, op, scalar_first):
    """A Python scalar is weak: numpy's rule for an array and a Python number."""
    arr = np.ones(1, dtype)
    args = (scalar, arr) if scalar_first else (arr, scalar)
    with np.errstate(all="ignore"):
        try:
            expected = np.asarray(_OPS[op](*args)).dtype
        except TypeError:
            return
    x = T.vector(dtype=dtype)
    sym = getattr(T, op)(*((scalar, x) if scalar_first else (x, scalar)))
    assert sym.dtype == str(expected), (dtype, scalar, op)


_WEAK_CASES = [("float32", 0.5, "float32"), ("float32", 2, "float32"), ("float64", 0.5, "float64"),
               ("int32", 2, "int32"), ("int8", 3, "int8"), ("int32", 0.5, "float64"), ("float32", True, "float32")]


def test_python_scalar_takes_the_tensor_dtype(mode):
    inputs, values, syms, refs = [], [], [], []
    for k, (dtype, scalar, expected) in enumerate(_WEAK_CASES):
        x = T.vector(f"x{k}", dtype=dtype)
        xv = np.array([1, 2, 3], dtype=dtype)
        inputs.append(x)
        values.append(xv)
        for sym, ref in [(x * scalar, xv * scalar), (scalar + x, scalar + xv), (x - scalar, xv - scalar)]:
            assert sym.dtype == expected, (dtype, scalar)
            syms.append(sym)
            refs.append(ref.astype(expected))
    for out, ref in zip(run(mode, inputs, syms, *values), refs):
        assert out.dtype == ref.dtype
        np.testing.assert_allclose(out, ref)


def test_constant_dtypes():
    assert T.constant(0.5).dtype == mg.config.floatX  # Python floats become floatX
    assert T.constant(3).dtype == "int64"
    assert T.constant(True).dtype == "bool"
    assert T.constant(np.float64(0.1)).dtype == "float64"  # numpy scalars keep their dtype
    assert T.constant(np.float32(0.1)).dtype == "float32"
    assert T.constant(np.int8(3)).dtype == "int8"
    assert T.constant([1.0, 2.0]).dtype == "float64"
    assert T.constant(2, dtype="int16").dtype == "int16"
    with pytest.raises(OverflowError):
        T.constant(1000, dtype="int8")
    # a numpy scalar is not weak: numpy's own rule (float32 array * float64 scalar is float64)
    assert (T.fvector() * np.float64(0.5)).dtype == str((np.ones(1, "float32") * np.float64(0.5)).dtype)


def test_fmatrix_times_half_stays_float32(mode):
    x = T.fmatrix("x")
    y = x * 0.5 + 1 - x / 3 + 2 ** x
    assert y.dtype == "float32"
    xv = np.ones((2, 2), dtype="float32")
    out = run(mode, [x], y, xv)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, xv * 0.5 + 1 - xv / 3 + 2 ** xv, rtol=1e-6)


def test_int_division_and_mod_follow_numpy(mode):
    i = T.ivector("i")
    iv = np.arange(-4, 5, dtype="int32")
    outs = run(mode, [i], [i // 3, i % 3, i % -3, i / 2, -7 // (i * 0 + 2), i // 2.5], iv)
    refs = [iv // 3, iv % 3, iv % -3, iv / 2, -7 // (iv * 0 + 2), iv // 2.5]
    for out, ref in zip(outs, refs):
        assert out.dtype == ref.dtype
        np.testing.assert_array_equal(out, ref)


def test_clip_switch_where_cast(mode, rng):
    x = T.dmatrix("x")
    xv = rng.standard_normal((3, 4))
    outs = run(mode, [x], [T.clip(x, -0.5, 0.5), x.clip(0, 1), T.switch(x > 0, x, 0.1 * x), T.where(T.lt(x, 0), 1.0, x),
                           T.cast(x * 10, "int32"), x.astype("float32"), T.invert(x > 0), (x > 0) & (x < 1),
                           (x > 0) | (x < -1)], xv)
    refs = [np.clip(xv, -0.5, 0.5), np.clip(xv, 0, 1), np.where(xv > 0, xv, 0.1 * xv), np.where(xv < 0, 1.0, xv),
            (xv * 10).astype("int32"), xv.astype("float32"), ~(xv > 0), (xv > 0) & (xv < 1), (xv > 0) | (xv < -1)]
    for out, ref in zip(outs, refs):
        assert out.dtype == ref.dtype
        np.testing.assert_allclose(out, ref, rtol=1e-6)


def test_stable_sigmoid_and_softplus_at_extremes(mode):
    x = T.dvector("x")
    xv = np.array([-800.0, -30.0, 0.0, 30.0, 800.0])
    sig, sp = run(mode, [x], [T.sigmoid(x), T.softplus(x)], xv)
    assert np.all(np.isfinite(sig)) and np.all(np.isfinite(sp))
    np.testing.assert_allclose(sig, [0.0, 1 / (1 + np.exp(30)), 0.5, 1 / (1 + np.exp(-30)), 1.0], rtol=1e-12)
    np.testing.assert_allclose(sp, [0.0, np.log1p(np.exp(-30)), np.log(2), 30 + np.log1p(np.exp(-30)), 800.0], rtol=1e-12)


# --- reductions ----------------------------------------------------------------------------

AXES = [None, 0, 1, 2, -1, -2, (0, 2), (2, 0), (-1, 0), (0, 1, 2), ()]
REDUCTIONS = [("sum", np.sum), ("mean", np.mean), ("max", np.max), ("min", np.min), ("prod", np.prod),
              ("var", np.var), ("std", np.std)]


@pytest.mark.parametrize("name,ref", REDUCTIONS, ids=[r[0] for r in REDUCTIONS])
def test_reductions(name, ref, mode, rng):
    """Every axis form (int, negative, tuple, unsorted, None, empty) with and without keepdims."""
    x = T.dtensor3("x")
    xv = rng.standard_normal((2, 3, 4))
    cases = [(axis, keepdims) for axis in AXES for keepdims in (False, True)]
    outs = run(mode, [x], [getattr(x, name)(axis=axis, keepdims=kd) for axis, kd in cases], xv)
    for (axis, kd), out in zip(cases, outs):
        expected = ref(xv, axis=axis, keepdims=kd)
        assert out.shape == np.shape(expected), (axis, kd)
        np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-12, err_msg=f"axis={axis} keepdims={kd}")


def test_sum_and_mean_dtypes_follow_numpy(mode):
    inputs, values, syms, refs = [], [], [], []
    for dtype in ["bool", "int8", "int32", "int64", "uint8", "float32"]:
        x = T.matrix(f"x_{dtype}", dtype=dtype)
        xv = (np.arange(6).reshape(2, 3) % 2 if dtype == "bool" else np.arange(6).reshape(2, 3)).astype(dtype)
        inputs.append(x)
        values.append(xv)
        syms += [x.sum(), x.sum(axis=0), x.mean(axis=1), x.prod()]
        refs += [np.sum(xv), np.sum(xv, axis=0), np.mean(xv, axis=1), np.prod(xv)]
    for sym, out, ref in zip(syms, run(mode, inputs, syms, *values), refs):
        ref = np.asarray(ref)
        assert sym.dtype == str(ref.dtype) and out.dtype == ref.dtype, (sym, out.dtype, ref.dtype)
        np.testing.assert_allclose(out, ref, rtol=1e-6)


def test_sum_with_dtype_argument_and_small_int_accumulation(mode):
    x = T.bvector("x")
    xv = np.full(200, 100, dtype="int8")
    s, s_default, p = run(mode, [x], [x.sum(dtype="int64"), x.sum(), x[:5].prod()], xv)
    assert s.dtype == np.int64 and s == 20000
    assert s_default.dtype == np.int64 and s_default == 20000  # numpy accumulates int8 in int64
    assert p.dtype == np.int64 and p == 100 ** 5


def test_argmax_argmin(mode, rng):
    x = T.dmatrix("x")
    xv = rng.standard_normal((3, 5))
    outs = run(mode, [x], [x.argmax(), x.argmax(axis=0), x.argmax(axis=-1, keepdims=True), x.argmin(axis=1)], xv)
    refs = [np.argmax(xv), np.argmax(xv, axis=0), np.argmax(xv, axis=-1, keepdims=True), np.argmin(xv, axis=1)]
    for out, ref in zip(outs, refs):
        np.testing.assert_array_equal(out, ref)
        assert out.shape == np.shape(ref)


def test_argmin_of_integer_extremes_and_bools(mode):
    a, u, b = T.bvector("a"), T.vector("u", dtype="uint8"), T.vector("b", dtype="bool")
    av = np.array([5, -128, 127, 0], dtype="int8")
    uv = np.array([3, 255, 0, 7], dtype="uint8")
    bv = np.array([True, False, True])
    outs = run(mode, [a, u, b], [T.argmin(a), u.argmin(), b.argmin(), a.argmax(), u.argmax()], av, uv, bv)
    assert [int(o) for o in outs] == [np.argmin(av), np.argmin(uv), np.argmin(bv), np.argmax(av), np.argmax(uv)]


def test_var_std_ddof(mode, rng):
    x = T.dmatrix("x")
    xv = rng.standard_normal((5, 3))
    v, s = run(mode, [x], [x.var(axis=0, ddof=1), T.std(x, axis=(0, 1), ddof=1)], xv)
    np.testing.assert_allclose(v, np.var(xv, axis=0, ddof=1))
    np.testing.assert_allclose(s, np.std(xv, ddof=1))


def test_mean_float32_stays_float32(mode):
    x = T.fmatrix("x")
    syms = [x.mean(), x.var(axis=0), x.var(axis=0, ddof=1), x.std(ddof=1), x.mean(axis=(0, 1), keepdims=True)]
    assert all(s.dtype == "float32" for s in syms)
    out = run(mode, [x], syms, np.arange(6, dtype="float32").reshape(2, 3))
    assert all(o.dtype == np.float32 for o in out)
    np.testing.assert_allclose(out[2], np.var(np.arange(6.0).reshape(2, 3), axis=0, ddof=1))


# --- dot ----------------------------------------------------------------------------------

@pytest.mark.parametrize("sa,sb", [((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 4)), ((2, 3), (3, 4))],
                         ids=["vv", "mv", "vm", "mm"])
def test_dot_and_matmul(sa, sb, mode, rng):
    a = T.tensor("float64", (None,) * len(sa), "a")
    b = T.tensor("float64", (None,) * len(sb), "b")
    av, bv = rng.standard_normal(sa), rng.standard_normal(sb)
    d, m, meth = run(mode, [a, b], [T.dot(a, b), a @ b, a.dot(b)], av, bv)
    for out in (d, m, meth):
        assert out.shape == np.dot(av, bv).shape
        np.testing.assert_allclose(out, av @ bv, rtol=1e-12)


def test_dot_dtypes(mode):
    a, b = T.fmatrix("a"), T.imatrix("b")
    out = run(mode, [a, b], T.dot(a, b), np.ones((2, 3), "float32"), np.ones((3, 2), "int32"))
    assert out.dtype == np.result_type("float32", "int32")
    np.testing.assert_allclose(out, 3.0)
    x = T.fmatrix("x")
    assert T.dot(x, x).dtype == "float32"


def test_outer(mode, rng):
    a, b = T.dvector("a"), T.dvector("b")
    av, bv = rng.standard_normal(3), rng.standard_normal(4)
    np.testing.assert_allclose(run(mode, [a, b], T.outer(a, b), av, bv), np.outer(av, bv))


# --- shape ops ----------------------------------------------------------------------------

def test_reshape_flatten(mode, rng):
    x = T.dtensor3("x")
    n = T.lscalar("n")
    xv = rng.standard_normal((2, 3, 4))
    outs = mg.function([x, n], [x.reshape((6, 4)), x.reshape((-1,)), x.reshape((2, -1)), x.reshape((n, -1, 2)),
                                 x.flatten(), x.flatten(2), T.flatten(x, 3), x.reshape(24), T.reshape(x, x.shape[::-1])],
                       mode=mode)(xv, 3)
    refs = [xv.reshape(6, 4), xv.reshape(-1), xv.reshape(2, -1), xv.reshape(3, -1, 2), xv.ravel(), xv.reshape(2, -1),
            xv, xv.reshape(24), xv.reshape(4, 3, 2)]
    for out, ref in zip(outs, refs):
        np.testing.assert_array_equal(out, ref)


def test_reshape_static_shapes():
    x = T.tensor("float64", (2, 3, 4))
    assert x.reshape((-1, 4)).type.shape == (6, 4)
    assert x.flatten(2).type.shape == (2, 12)
    assert T.dmatrix().reshape((-1, 2)).type.shape == (None, 2)


def test_dimshuffle_transpose(mode, rng):
    x = T.dtensor3("x")
    xv = rng.standard_normal((2, 3, 4))
    outs = run(mode, [x], [x.dimshuffle(2, 0, 1), x.dimshuffle("x", 0, 1, "x", 2), x.T, x.transpose(1, 0, 2),
                           T.transpose(x, (0, 2, 1)), x.dimshuffle((1, "x", 0, 2))], xv)
    refs = [xv.transpose(2, 0, 1), xv[None, :, :, None, :], xv.T, xv.transpose(1, 0, 2), xv.transpose(0, 2, 1),
            xv.transpose(1, 0, 2)[:, None]]
    for out, ref in zip(outs, refs):
        np.testing.assert_array_equal(out, ref)
    assert x.dimshuffle("x", 2, 0, 1).type.shape == (1, None, None, None)


def test_dimshuffle_drops_length_one_axis(mode):
    x = T.tensor("float64", (None, 1, None), "x")
    xv = np.arange(6.0).reshape(2, 1, 3)
    out = run(mode, [x], x.dimshuffle(2, 0), xv)
    np.testing.assert_array_equal(out, xv[:, 0, :].T)


def test_repeat_numpy_semantics(mode, rng):
    x = T.dmatrix("x")
    r = T.lscalar("r")
    xv = rng.standard_normal((2, 3))
    axes = [None, 0, 1, -1]
    syms = [T.repeat(x, r, axis=a) for a in axes] + [x.repeat(2, a) for a in axes]
    outs = mg.function([x, r], syms, mode=mode)(xv, 3)
    refs = [np.repeat(xv, 3, axis=a) for a in axes] + [np.repeat(xv, 2, axis=a) for a in axes]
    for out, ref in zip(outs, refs):
        np.testing.assert_array_equal(out, ref)


def test_repeat_static_shape():
    x = T.tensor("float64", (2, 3))
    assert T.repeat(x, 2).type.shape == (12,)
    assert T.repeat(x, 2, axis=1).type.shape == (2, 6)


def test_concatenate_stack(mode, rng):
    a, b = T.dmatrix("a"), T.dmatrix("b")
    av, bv = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    outs = run(mode, [a, b], [T.concatenate([a, b]), T.concatenate([a, b], axis=1), T.concatenate([a, b, a], axis=-1),
                              T.stack([a, b]), T.stack([a, b], axis=1), T.stack([a, b], axis=-1),
                              T.stack([a.sum(), b.sum()])], av, bv)
    refs = [np.concatenate([av, bv]), np.concatenate([av, bv], 1), np.concatenate([av, bv, av], -1),
            np.stack([av, bv]), np.stack([av, bv], 1), np.stack([av, bv], -1), np.stack([av.sum(), bv.sum()])]
    for out, ref in zip(outs, refs):
        np.testing.assert_allclose(out, ref)


def test_concatenate_mixed_dtypes(mode):
    a, b = T.ivector("a"), T.fvector("b")
    out = run(mode, [a, b], T.concatenate([a, b]), np.array([1, 2], "int32"), np.array([0.5], "float32"))
    ref = np.concatenate([np.array([1, 2], "int32"), np.array([0.5], "float32")])
    assert out.dtype == ref.dtype
    np.testing.assert_array_equal(out, ref)


def test_symbolic_shape(mode, rng):
    x = T.dtensor3("x")
    xv = rng.standard_normal((2, 3, 4))
    s, s1, sm1, n = run(mode, [x], [x.shape, x.shape[1], x.shape[-1], x.size], xv)
    np.testing.assert_array_equal(s, [2, 3, 4])
    assert s.dtype == np.int64
    assert s1 == 3 and sm1 == 4 and n == 24
    # arithmetic on shapes
    half = run(mode, [x], x.reshape((x.shape[0] * x.shape[1], x.shape[2])), xv)
    np.testing.assert_array_equal(half, xv.reshape(6, 4))


def test_static_shape_is_a_constant():
    from minigraph.tensor.basic import get_constant_value

    x = T.tensor("float64", (5, None))
    assert int(get_constant_value(x.shape[0])) == 5
    assert get_constant_value(x.shape[1]) is None


def test_arange(mode):
    n = T.lscalar("n")
    outs = mg.function([n], [T.arange(n), T.arange(1, n, 2), T.arange(5), T.arange(0.0, 1.0, 0.25), T.arange(n, 0, -1)],
                       mode=mode)(7)
    refs = [np.arange(7), np.arange(1, 7, 2), np.arange(5), np.arange(0.0, 1.0, 0.25), np.arange(7, 0, -1)]
    for out, ref in zip(outs, refs):
        np.testing.assert_array_equal(out, ref)
    assert outs[0].dtype == np.int64
    assert outs[3].dtype == mg.config.floatX  # Python floats become floatX
    assert T.arange(5).type.shape == (5,)


def test_zeros_ones_like_alloc(mode, rng):
    x = T.fmatrix("x")
    v = T.dvector("v")
    n = T.lscalar("n")
    xv = f32(rng, 2, 3)
    vv = rng.standard_normal(3)
    outs = mg.function([x, v, n], [T.zeros_like(x), T.ones_like(x), T.ones_like(x, dtype="int32"), T.alloc(v, n, 3),
                                   T.alloc(1.5, n), T.zeros((n, 2)), T.ones(3, dtype="int8"), T.alloc(v, 2, 1, 3)],
                       mode=mode)(xv, vv, 4)
    refs = [np.zeros_like(xv), np.ones_like(xv), np.ones((2, 3), "int32"), np.broadcast_to(vv, (4, 3)),
            np.full(4, 1.5, mg.config.floatX), np.zeros((4, 2), mg.config.floatX), np.ones(3, "int8"),
            np.broadcast_to(vv, (2, 1, 3))]
    for out, ref in zip(outs, refs):
        assert out.dtype == ref.dtype
        np.testing.assert_array_equal(out, ref)


# --- indexing -----------------------------------------------------------------------------

def test_basic_slicing(mode, rng):
    x = T.dtensor3("x")
    i = T.lscalar("i")
    xv = rng.standard_normal((4, 5, 6))
    syms = [x[1], x[-1], x[1:3], x[:, 2], x[::2, 1:-1, ::-1], x[1, 2, 3], x[..., 0], x[i], x[i:, :i], x[:, i, -i:],
            x[0][1:], x[1:3:1, ::3]]
    refs = [xv[1], xv[-1], xv[1:3], xv[:, 2], xv[::2, 1:-1, ::-1], xv[1, 2, 3], xv[..., 0], xv[2], xv[2:, :2],
            xv[:, 2, -2:], xv[0][1:], xv[1:3:1, ::3]]
    outs = mg.function([x, i], syms, mode=mode)(xv, 2)
    for out, ref in zip(outs, refs):
        assert out.shape == ref.shape
        np.testing.assert_array_equal(out, ref)


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_random_basic_indexing_matches_numpy(data):
    """Random slices (any bounds, negative steps, out of range) and integers, static or not."""
    shape = tuple(data.draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))
    static = data.draw(st.booleans())
    bound = st.one_of(st.none(), st.integers(-6, 6))
    index = []
    for n in shape[: data.draw(st.integers(1, len(shape)))]:
        if data.draw(st.booleans()):
            index.append(slice(data.draw(bound), data.draw(bound), data.draw(st.sampled_from([None, 1, 2, -1, -2]))))
        else:
            index.append(data.draw(st.integers(-n, n - 1)))
    for _ in range(data.draw(st.integers(0, 2))):  # np.newaxis anywhere
        index.insert(data.draw(st.integers(0, len(index))), None)
    index = tuple(index)
    xv = np.arange(int(np.prod(shape)), dtype="float64").reshape(shape)
    x = T.tensor("float64", shape if static else (None,) * len(shape), "x")
    sym = x[index]
    expected = xv[index]
    if static:
        assert sym.type.shape == np.shape(expected)
    np.testing.assert_array_equal(mg.function([x], sym, mode="python")(xv), expected)
    # the same with every integer given at run time
    scalars, values = [], []

    def symbolic(v):
        if v is None:
            return None
        scalars.append(T.lscalar(f"i{len(scalars)}"))
        values.append(v)
        return scalars[-1]

    sym_index = tuple(slice(symbolic(e.start), symbolic(e.stop), symbolic(e.step)) if isinstance(e, slice)
                      else symbolic(e) for e in index)
    out = mg.function([x, *scalars], x[sym_index], mode="python")(xv, *values)
    np.testing.assert_array_equal(out, expected)


def test_newaxis_inserts_length_one_axes(mode, rng):
    x = T.dtensor3("x")
    xv = rng.standard_normal((2, 3, 4))
    indices = [(None,), (slice(None), None), (Ellipsis, None), (1, None), (None, slice(1, 3), None),
               (None, 1, Ellipsis, None), (0, 1, 2, None), (None, None)]
    outs = mg.function([x], [x[i] for i in indices], mode=mode)(xv)
    for i, out in zip(indices, outs):
        assert out.shape == xv[i].shape, i
        np.testing.assert_array_equal(out, xv[i])
    assert x[None, 1:3, None].type.shape == (1, None, 1, None, None)  # the new axes are static 1s
    mg.verify_grad(lambda v: v[:, None, 1:] * v[None, :, :-1].sum(axis=2), [rng.standard_normal((3, 4))], rng=rng)
    with pytest.raises(IndexError, match="newaxis cannot be mixed with integer-array"):
        x[None, [0, 1]]


def test_boolean_masks_select_where_true(mode, rng):
    x = T.dmatrix("x")
    m = T.tensor("bool", (None,), "m")
    xv = rng.standard_normal((3, 4))
    mv = np.array([True, False, True])
    cols = np.array([True, False, False, True])
    outs = mg.function([x, m], [x[x > 0], x[m], x[:, cols], x[..., cols], x[x > 0.5 * x.max()], x[m, 1:],
                                T.set_subtensor(x[x < 0], 0.0), T.inc_subtensor(x[m], 1.0)], mode=mode)(xv, mv)
    wants = [xv[xv > 0], xv[mv], xv[:, cols], xv[..., cols], xv[xv > 0.5 * xv.max()], xv[mv, 1:],
             np.where(xv < 0, 0, xv), xv + mv[:, None]]
    for out, want in zip(outs, wants):
        assert out.shape == want.shape
        np.testing.assert_array_equal(out, want)
    # the gradient flows to the selected entries only
    g = mg.function([x, m], mg.grad(T.sum(T.sqr(x[m])), x), mode=mode)(xv, mv)
    np.testing.assert_allclose(g, 2 * xv * mv[:, None])
    # a mask must have the lengths of the axes it indexes (numpy raises too)
    with pytest.raises(ValueError, match=r"\(2,\).*\(3,\)"):
        mg.function([x, m], x[m], mode=mode)(xv, np.array([True, False]))
    with pytest.raises(ValueError, match="axis 0 has length 2, not 3"):
        T.tensor("float64", (3, 4))[np.array([True, False])]


def test_slicing_static_shapes():
    x = T.tensor("float64", (4, 5, 6))
    assert x[1:3].type.shape == (2, 5, 6)
    assert x[::2, 1:-1, ::-1].type.shape == (2, 3, 6)
    assert x[1, :, 2].type.shape == (5,)


_ADV_INDICES = [
    ("a", lambda a, b: (a,)),
    ("ab", lambda a, b: (a, b)),
    ("_a", lambda a, b: (slice(None), a)),
    ("a_b", lambda a, b: (a, slice(None), b)),  # not adjacent: the broadcast dims come first
    ("1:ab", lambda a, b: (slice(1, None), a, b)),
    ("0_b", lambda a, b: (0, slice(None), b)),  # an int among arrays counts as advanced
    ("a1", lambda a, b: (a, 1)),
    ("__a", lambda a, b: (slice(None), slice(None), a)),
]


@pytest.mark.parametrize("static", [False, True])
def test_integer_array_indexing(static, mode, rng):
    xv = rng.standard_normal((3, 4, 5))
    x = T.tensor("float64", xv.shape if static else (None,) * 3, "x")
    a, b = T.lvector("a"), T.lvector("b")
    av, bv = np.array([0, 2, 2, 1]), np.array([3, 0, 1, -1])
    syms = [x[make(a, b)] for _, make in _ADV_INDICES]
    outs = mg.function([x, a, b], syms, mode=mode)(xv, av, bv)
    for (name, make), sym, out in zip(_ADV_INDICES, syms, outs):
        expected = xv[make(av, bv)]
        assert sym.ndim == expected.ndim, name
        assert all(s is None or s == e for s, e in zip(sym.type.shape, expected.shape)), (name, sym.type, expected.shape)
        np.testing.assert_array_equal(out, expected, err_msg=name)


def test_nll_indexing_pattern(mode, rng):
    logp = T.dmatrix("logp")
    y = T.ivector("y")
    lv = rng.standard_normal((5, 3))
    yv = np.array([0, 2, 1, 1, 0], dtype="int32")
    out = run(mode, [logp, y], logp[T.arange(y.shape[0]), y], lv, yv)
    np.testing.assert_array_equal(out, lv[np.arange(5), yv])
    out = run(mode, [logp, y], -T.mean(logp[T.arange(logp.shape[0]), y]), lv, yv)
    np.testing.assert_allclose(out, -np.mean(lv[np.arange(5), yv]))


def test_index_with_matrix_and_list(mode, rng):
    x = T.dmatrix("x")
    idx = T.lmatrix("idx")
    xv = rng.standard_normal((4, 3))
    iv = np.array([[0, 3], [1, 1]])
    a, b = mg.function([x, idx], [x[idx], x[[2, 0]]], mode=mode)(xv, iv)
    np.testing.assert_array_equal(a, xv[iv])
    np.testing.assert_array_equal(b, xv[[2, 0]])


def test_set_and_inc_subtensor(mode, rng):
    x = T.dmatrix("x")
    xv = rng.standard_normal((3, 4))
    idx = np.array([0, 0, 2])
    outs = run(mode, [x], [T.set_subtensor(x[1:, 0], 5.0), T.inc_subtensor(x[:, 1], 1.0),
                           T.inc_subtensor(x[idx], 1.0), T.set_subtensor(x[idx, 1], -1.0)], xv)
    r0 = xv.copy(); r0[1:, 0] = 5
    r1 = xv.copy(); r1[:, 1] += 1
    r2 = xv.copy(); np.add.at(r2, idx, 1.0)
    r3 = xv.copy(); r3[idx, 1] = -1
    for out, ref in zip(outs, [r0, r1, r2, r3]):
        np.testing.assert_allclose(out, ref)
    np.testing.assert_array_equal(run(mode, [x], x, xv), xv)  # the input itself is untouched


# --- nnet ---------------------------------------------------------------------------------

def _softmax(a, axis=-1):
    e = np.exp(a - a.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_softmax_log_softmax(dtype, mode, rng):
    x = T.matrix("x", dtype=dtype)
    xv = (rng.standard_normal((4, 5)) * 3).astype(dtype)
    xv[0, 0] = 500  # no overflow
    sm, lsm, sm0, v = run(mode, [x], [T.nnet.softmax(x), T.nnet.log_softmax(x), T.nnet.softmax(x, axis=0),
                                      T.nnet.softmax(x[0])], xv)
    tol = 1e-5 if dtype == "float32" else 1e-12
    for out, ref in [(sm, _softmax(xv)), (sm0, _softmax(xv, 0)), (v, _softmax(xv[0]))]:
        assert out.dtype == dtype
        np.testing.assert_allclose(out, ref, rtol=tol, atol=tol)
    ref_lsm = xv - xv.max(axis=1, keepdims=True)
    ref_lsm = ref_lsm - np.log(np.exp(ref_lsm).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(lsm, ref_lsm, rtol=tol, atol=tol)
    assert np.all(np.isfinite(lsm))


def test_sigmoid_relu_namespace(mode, rng):
    x = T.dmatrix("x")
    xv = rng.standard_normal((3, 4))
    s, r, lr = run(mode, [x], [T.nnet.sigmoid(x), T.nnet.relu(x), T.nnet.relu(x, alpha=0.1)], xv)
    np.testing.assert_allclose(s, 1 / (1 + np.exp(-xv)))
    np.testing.assert_array_equal(r, np.maximum(xv, 0))
    np.testing.assert_allclose(lr, np.where(xv > 0, xv, 0.1 * xv))


def test_categorical_crossentropy(mode, rng):
    x = T.dmatrix("x")
    y = T.ivector("y")
    t = T.dmatrix("t")
    xv = rng.standard_normal((4, 3))
    yv = np.array([0, 2, 1, 2], dtype="int32")
    tv = np.eye(3)[yv]
    p = T.nnet.softmax(x)
    a, b = mg.function([x, y, t], [T.nnet.categorical_crossentropy(p, y), T.nnet.categorical_crossentropy(p, t)],
                       mode=mode)(xv, yv, tv)
    ref = -np.log(_softmax(xv)[np.arange(4), yv])
    np.testing.assert_allclose(a, ref)
    np.testing.assert_allclose(b, ref)


def test_the_tensor_namespace_has_the_theano_names():
    """The contract of DESIGN.md and issue 2: every listed name exists."""
    names = """scalar vector matrix tensor3 tensor4 iscalar ivector lvector fvector fmatrix dvector dmatrix dtensor3
    ftensor4 constant as_tensor_variable cast neg abs exp log log1p sqrt sqr tanh sigmoid softplus maximum minimum
    clip switch where lt gt le ge eq neq sgn sum mean var std max min argmax prod dot reshape flatten dimshuffle
    transpose repeat concatenate stack shape arange zeros_like ones_like alloc set_subtensor inc_subtensor""".split()
    assert [n for n in names if not hasattr(T, n)] == []
    assert [n for n in "softmax log_softmax sigmoid relu categorical_crossentropy".split() if not hasattr(T.nnet, n)] == []
    for n in ["grad", "function", "shared", "debugprint", "pp", "RandomStreams", "config"]:
        assert hasattr(mg, n), n
    assert callable(mg.gradient.verify_grad)
    assert T.matrix().dtype == mg.config.floatX  # "float32" unless MINIGRAPH_FLOATX says otherwise
