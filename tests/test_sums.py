"""Factors constant along the summed axes move out of sums (rewriting/sums.py), and a known
gradient is tied to its variable's shape (specify_shape): batch norm's backward then shares
its sums."""
import numpy as np
import pytest

import minigraph as mg
import minigraph.tensor as T
from minigraph.printing import listing
from minigraph.rewriting.sums import SUM_RULES
from minigraph.tensor import math as M
from minigraph.tensor import shape_ops as S
from test_rewriting import LOCAL, check, evaluate, rewritten

RULES = LOCAL + SUM_RULES


@pytest.fixture
def data(rng):
    x = T.tensor(dtype="float64", shape=(None, None), name="x")
    c = T.tensor(dtype="float64", shape=(1, None), name="c")
    return x, c, rng.standard_normal((5, 4)), 1 + rng.random((1, 4))


def test_factor_constant_along_the_axis_leaves_the_sum(data):
    x, c, xv, cv = data
    out = T.sum(c * T.tanh(x), axis=0)
    expected = (c * T.sum(T.tanh(x), axis=0, keepdims=True)).dimshuffle(1)
    check([x, c], out, expected, [xv, cv], "local_sum_factor_out", rules=RULES)


def test_negation_and_division_leave_the_sum(data):
    x, c, xv, cv = data
    out = T.sum(-(T.exp(x) / c), axis=0)
    expected = (-(T.sum(T.exp(x), axis=0, keepdims=True) / c)).dimshuffle(1)
    check([x, c], out, expected, [xv, cv], "local_sum_factor_out", rules=RULES)


def test_a_factor_varying_along_the_axis_stays(data):
    x, c, xv, cv = data
    # c varies along axis 1, the summed axis: nothing to pull out
    fg, log = rewritten([x, c], [T.sum(c * T.tanh(x), axis=1)], rules=RULES)
    assert "local_sum_factor_out" not in log.counts()


def test_sum_of_an_addition_splits_only_where_the_lengths_are_known_equal(data, rng):
    x, c, xv, cv = data
    # both terms have x's lengths: sum(c * x + x) -> c * sum(x) + sum(x)
    out = T.sum(c * x + T.sqr(x), axis=0)
    expected = (c * T.sum(x, axis=0, keepdims=True) + T.sum(T.sqr(x), axis=0, keepdims=True)).dimshuffle(1)
    check([x, c], out, expected, [xv, cv], "local_sum_factor_out", rules=RULES)
    # b's length on the summed axis may be 1 at run time (then it counts once per row of x):
    # the sum of the addition is kept whole, and the values agree when b broadcasts
    b = T.tensor(dtype="float64", shape=(None, None), name="b")
    out = T.sum(c * x + b, axis=0)
    fg, log = rewritten([x, c, b], [out], rules=RULES)
    assert "local_sum_factor_out" not in log.counts()
    bv = rng.standard_normal((1, 4))
    np.testing.assert_allclose(evaluate(fg, [xv, cv, bv])[0], (cv * xv + bv).sum(axis=0))


@pytest.mark.parametrize("axes", [(0,), (0, 1)])
def test_a_term_constant_along_the_axes_counts_once_per_element(rng, axes):
    x = T.tensor(dtype="float64", shape=(None, None, None), name="x")
    c = T.tensor(dtype="float64", shape=(1, 1, None), name="c")
    out = T.sum(T.exp(x) - c, axis=axes)
    fg, log = rewritten([x, c], [out], rules=RULES)
    assert "local_sum_factor_out" in log.counts()
    sums = [n for n in fg.toposort() if isinstance(n.op, M.Sum)]
    assert sums and all(c not in n.inputs[0].owner.inputs for n in sums)  # c is no longer summed
    xv, cv = rng.standard_normal((5, 3, 4)), rng.standard_normal((1, 1, 4))
    np.testing.assert_allclose(evaluate(fg, [xv, cv])[0], (np.exp(xv) - cv).sum(axis=axes), rtol=1e-12)
    # x may have length 1 on a summed axis at run time: the count follows the broadcast shape
    np.testing.assert_allclose(evaluate(fg, [xv[:1], cv])[0], (np.exp(xv[:1]) - cv).sum(axis=axes), rtol=1e-12)


def test_sum_of_a_run_time_sum_to_shape_sums_first(data, rng):
    """sum(sum_to_shape(y, n, m), axis=0) -> sum_to_shape(sum(y, axis=0), 1, m): the same
    values whether or not a length is 1 at run time."""
    x, c, xv, cv = data
    y = T.tanh(x) * c
    n, m = T.lscalar("n"), T.lscalar("m")
    out = T.sum(S.SumToShape()(y, n, m), axis=0)
    fg, log = rewritten([x, c, n, m], [out], rules=RULES)
    assert "local_sum_of_sum_to_shape" in log.counts()
    # the inner sum then lost its factor c: only tanh(x) is summed over the batch
    assert "a = tanh(x)" in listing(fg.outputs) and "sum{axis=0}(a)" in listing(fg.outputs)
    for xs, cs, lengths in [(xv, cv, (5, 4)), (xv, cv, (1, 4)), (xv[:, :1], cv, (5, 1)), (xv[:, :1], cv, (5, 4))]:
        ys = np.tanh(xs) * cs
        axes = tuple(d for d, (a, b) in enumerate(zip(ys.shape, lengths)) if b == 1 and a != 1)
        want = ys.sum(axis=axes, keepdims=True).sum(axis=0)
        got = evaluate(fg, [xs, cs, np.asarray(lengths[0]), np.asarray(lengths[1])])[0]
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_numba_matches_the_reference_on_pulled_sums(data):
    x, c, xv, cv = data
    out = T.sum(c * T.tanh(x) - T.exp(x) / c, axis=0)
    got = mg.function([x, c], out, mode="numba")(xv, cv)
    np.testing.assert_allclose(got, (cv * np.tanh(xv) - np.exp(xv) / cv).sum(axis=0), rtol=1e-12)


def test_gradient_through_pulled_sums_matches_finite_differences(rng):
    x = T.dmatrix("x")
    c = T.dmatrix("c")
    mg.verify_grad(lambda x, c: T.sum(T.sqr(T.sum(c[:1] * T.tanh(x), axis=0))),
                   [rng.standard_normal((4, 3)), 1 + rng.random((2, 3))], rng=rng)


# --- specify_shape ----------------------------------------------------------------------------

def test_specify_shape_checks_when_it_runs(mode):
    x = T.dmatrix("x")
    n = T.lscalar("n")
    f = mg.function([x, n], S.specify_shape(x, n, 3) * 2.0, mode=mode)
    np.testing.assert_allclose(f(np.ones((2, 3)), 2), 2 * np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"specify_shape.*\(2, 3\).*\(4, 3\)"):
        f(np.ones((2, 3)), 4)


def test_specify_shape_rejects_a_static_mismatch_when_built():
    x = T.tensor(dtype="float64", shape=(2, 3), name="x")
    with pytest.raises(ValueError, match="axis 1 has length 3, not 4"):
        S.specify_shape(x, 2, 4)


def test_known_gradient_takes_its_variables_shape():
    x = T.dmatrix("x")
    dy = T.dmatrix("dy")
    y = T.tanh(x) * 2.0
    gx = mg.grad(None, x, known_grads={y: dy})
    assert "specify_shape(dy" in listing(gx)
    # the rewrites use it: the gradient's run-time sum_to_shape of dy disappears, then the
    # check itself (x's lengths are those of y)
    fg, log = rewritten([x, dy], [gx], rules=RULES)
    ops = [type(n.op) for n in fg.toposort()]
    assert S.SumToShape not in ops
    # a gradient of the wrong shape is named when the function runs
    f = mg.function([x, dy], gx, mode="python")
    with pytest.raises(ValueError, match="specify_shape"):
        f(np.ones((2, 3)), np.ones((3, 3)))
    with pytest.raises(ValueError, match="known gradient"):
        mg.grad(None, T.tensor(dtype="float64", shape=(2, 3)) * 1.0,
                known_grads={T.tensor(dtype="float64", shape=(2, 3)) * 1.0: T.tensor(dtype="float64", shape=(4, 3))})


def test_batch_norm_backward_shares_its_sums():
    """Forward + backward with every length but the batch's known, as with shared parameters:
    one pass for the mean, one for every other sum, one for y and dx (7 full-size passes
    over memory, against 10 before the factors left the sums); three sums in the second
    pass (``sum(x - mean)`` is ``sum(x) - n * mean``, from the mean's own sum)."""
    x = T.tensor(dtype="float32", shape=(None, 16), name="x")
    gamma = T.tensor(dtype="float32", shape=(1, 16), name="gamma")
    beta = T.tensor(dtype="float32", shape=(1, 16), name="beta")
    dy = T.tensor(dtype="float32", shape=(None, 16), name="dy")
    out, _, _ = T.nnet.bn.batch_normalization_train(x, gamma, beta, axes="per-activation", epsilon=1e-4)
    grads = mg.grad(None, [x, gamma, beta], known_grads={out: dy})
    f = mg.function([x, gamma, beta, dy], [out] + grads, mode="python")
    full = [n for n in f.fgraph.toposort() if n.outputs[0].ndim == 2 and n.outputs[0].type.shape[0] != 1
            and not isinstance(n.op, (S.SpecifyShape,)) and type(n.op).__name__ != "DimShuffle"]
    reductions = [n for n in f.fgraph.toposort() if isinstance(n.op, (M.Sum, M.FusedReduce))]
    assert len(full) == 1, [str(n.op) for n in full]  # y and dx in one kernel
    assert len(reductions) == 2, [str(n.op) for n in reductions]  # the mean; everything else
    assert len(reductions[1].outputs) == 3, str(reductions[1].op)
    rng = np.random.default_rng(0)
    values = [rng.standard_normal((8, 16)).astype("float32"), (1 + 0.1 * rng.standard_normal((1, 16))).astype("float32"),
              rng.standard_normal((1, 16)).astype("float32"), rng.standard_normal((8, 16)).astype("float32")]
    want = mg.function([x, gamma, beta, dy], [out] + grads, mode="python", rewrites=None)(*values)
    for g, w in zip(f(*values), want):
        np.testing.assert_allclose(g, w, rtol=2e-4, atol=2e-5)


def test_explain_counts_specify_shape_as_a_view():
    x = T.dmatrix("x")
    n = T.lscalar("n")
    f = mg.function([x, n], S.specify_shape(x, n, 3) * 2.0, mode="python", rewrites=None)
    table = mg.printing.explain(f, np.ones((2, 3)), 2)
    row = next(r for r in table.rows if any("specify_shape" in s for s in r.nodes))
    assert row.kind == "view" and not row.bytes_written and row not in table.compute_rows()
