"""CenteredSums: a sum over axis 0 joined with the reduction that centers on its mean (the
rewrite in ``rewriting.moments``), and its numba kernels (serial: the mean, then the terms
about it; parallel: each run of rows centered on its own mean, the sums moved exactly)."""
import numpy as np
import pytest

import minigraph as mg
import minigraph.tensor as T
from minigraph.tensor import math as M

TERMS = (("sq", 0), ("cross", 1), ("sum", 1), ("sum", 0))


def _exact(x, g):
    """The outputs in float64, centered on the mean as the graph computes it (in x's dtype)."""
    dt = x.dtype.type
    total = x.astype(np.float64).sum(axis=0)
    with np.errstate(all="ignore"):
        mean = (total.astype(dt) / dt(x.shape[0])).astype(np.float64)
    c, g = x.astype(np.float64) - mean, g.astype(np.float64)
    terms = [c * c, g * c, g, x.astype(np.float64)]
    return [total] + [t.sum(axis=0) for t in terms], [np.abs(x).sum(axis=0)] + [np.abs(t).sum(axis=0) for t in terms]


def _function(dtype, variant, monkeypatch, mode="numba"):
    if variant == "parallel":
        import numba

        from minigraph.backends.numba import linker

        if numba.config.NUMBA_NUM_THREADS < 2:
            pytest.skip("one thread only")
        monkeypatch.setenv("MINIGRAPH_NUM_THREADS", "2")
        monkeypatch.setattr(linker, "PARALLEL_THRESHOLD", 1)  # the parallel variant, on any size
    monkeypatch.setenv("MINIGRAPH_COMPILED_DRIVER", "off")
    x, g = T.tensor(dtype=dtype, shape=(None, None), name="x"), T.tensor(dtype=dtype, shape=(None, None), name="g")
    return mg.function([x, g], M.CenteredSums(TERMS)(x, g), mode=mode, rewrites=None)


@pytest.mark.parametrize("variant", ["serial", "parallel"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_kernels_sum_every_row_once(variant, dtype, monkeypatch):
    """Row counts around the pairs of rows, the runs (64 rows, 43 when rows are long) and the
    blocks; every sum within the rounding of adding its terms up."""
    f = _function(dtype, variant, monkeypatch)
    ref = _function(dtype, variant, monkeypatch, mode="python")
    rng = np.random.default_rng(0)
    eps = np.finfo(dtype).eps
    for n0, n1 in [(0, 3), (1, 3), (2, 3), (3, 5), (17, 3), (64, 4), (65, 4), (130, 3), (257, 2), (87, 1500)]:
        x = (rng.standard_normal((n0, n1)) * 2 + 3).astype(dtype)
        g = rng.standard_normal((n0, n1)).astype(dtype)
        want, scale = _exact(x, g)
        for outs in (f(x, g), ref(x, g)):
            assert all(o.dtype == dtype and o.shape == (n1,) for o in outs)
            for k, (o, w, s) in enumerate(zip(outs, want, scale)):
                assert np.all(np.abs(o - w) <= 70 * eps * s + np.abs(w) * eps), (n0, n1, k, o - w)


@pytest.mark.parametrize("variant", ["serial", "parallel"])
def test_offset_and_drifting_rows_keep_the_variance_exact(variant, monkeypatch):
    """A mean far from zero, and rows whose mean drifts by 500 standard deviations: centered
    sums stay accurate (where sum(x^2) - n mean^2 in float32 would lose every digit); at an
    offset of 1e4 the parallel kernel needs its every correction term to pass."""
    f = _function("float32", variant, monkeypatch)
    rng = np.random.default_rng(1)
    n0 = 3000
    for shift in [np.full((n0, 1), 1e3), np.full((n0, 1), 1e4), np.linspace(0, 500, n0)[:, None]]:
        x = (shift + rng.standard_normal((n0, 4))).astype("float32")
        g = rng.standard_normal((n0, 4)).astype("float32")
        want, scale = _exact(x, g)
        got = f(x, g)
        np.testing.assert_allclose(got[1], want[1], rtol=1e-6)  # sum((x - mean)^2)
        assert np.all(np.abs(got[2] - want[2]) <= 70 * np.finfo("float32").eps * scale[2])  # sum(g (x - mean))


def _bn(dtype="float32", xshape=(None, 6)):
    x = T.tensor(dtype=dtype, shape=xshape, name="x")
    gamma = T.tensor(dtype=dtype, shape=(1, xshape[1]), name="gamma")
    beta = T.tensor(dtype=dtype, shape=(1, xshape[1]), name="beta")
    dy = T.tensor(dtype=dtype, shape=xshape, name="dy")
    out, mean, invstd = T.nnet.bn.batch_normalization_train(x, gamma, beta, axes="per-activation", epsilon=1e-4)
    grads = mg.grad(None, [x, gamma, beta], known_grads={out: dy})
    return [x, gamma, beta, dy], [out, mean, invstd] + grads


def _values(rng, n=37, d=6, dtype="float32"):
    return [(rng.standard_normal((n, d)) + 5).astype(dtype), (1 + 0.1 * rng.standard_normal((1, d))).astype(dtype),
            rng.standard_normal((1, d)).astype(dtype), rng.standard_normal((n, d)).astype(dtype)]


def test_batch_norm_reads_x_once_for_all_its_sums(mode):
    inputs, outputs = _bn()
    f = mg.function(inputs, outputs, mode=mode)
    stats = [n for n in f.fgraph.toposort() if isinstance(n.op, (M.Sum, M.FusedReduce, M.CenteredSums))]
    assert [type(n.op) for n in stats] == [M.CenteredSums], [str(n.op) for n in stats]
    assert f.rewrite_log.counts()["centered_sums"] == 1
    values = _values(np.random.default_rng(2))
    want = mg.function(inputs, outputs, mode="python", rewrites=None)(*values)
    for g, w in zip(f(*values), want):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("case", ["rows", "other_mean", "cube", "unbiased", "exp"])
def test_other_reductions_are_left_alone(case):
    x, y = T.fmatrix("x"), T.fmatrix("y")
    n = T.cast(x.shape[0], "float32")
    mean = T.sum(x, axis=0, keepdims=True) / n
    outputs = [T.sum(x, axis=0), {
        "rows": T.sum(T.sqr(x - T.mean(x, axis=1, keepdims=True)), axis=1),  # over axis 1
        "other_mean": T.sum(T.sqr(x - T.mean(y, axis=0, keepdims=True)), axis=0),  # centered on y's mean
        "cube": T.sum((x - mean) ** 3, axis=0),  # not a square
        "unbiased": T.sum(T.sqr(x - T.sum(x, axis=0, keepdims=True) / (n - 1)), axis=0),  # not the mean
        "exp": T.sum(T.exp(x - mean), axis=0),  # not a square, a product or a plain sum
    }[case]]
    f = mg.function([x, y], outputs, mode="python", on_unused_input="ignore")
    assert not any(isinstance(n.op, M.CenteredSums) for n in f.fgraph.toposort()), case
    rng = np.random.default_rng(3)
    values = [rng.standard_normal((9, 4)).astype("float32") for _ in range(2)]
    want = mg.function([x, y], outputs, mode="python", rewrites=None, on_unused_input="ignore")(*values)
    for g, w in zip(f(*values), want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


def test_bad_inputs_name_the_op():
    with pytest.raises(TypeError, match="centered_sums.*float matrix"):
        M.CenteredSums((("sq", 0),))(T.ftensor3("x"))
    with pytest.raises(TypeError, match="centered_sums.*type of x"):
        M.CenteredSums((("cross", 1),))(T.fmatrix("x"), T.dmatrix("g"))
    with pytest.raises(ValueError, match="centered_sums.*term"):
        M.CenteredSums((("cross", 0),))(T.fmatrix("x"))
