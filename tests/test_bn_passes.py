"""Batch norm forward + backward with lengths unknown until run time (benchmarks/bn.py's "run-time lengths" rows):
the rewrites must leave few full-size kernels, and stay exact when a length 1 broadcasts."""
import numpy as np
import pytest

import minigraph as mg
import minigraph.tensor as T
from minigraph.tensor import elemwise as E
from minigraph.tensor import math as M
from minigraph.tensor import shape_ops as S


def _bn_step(mode, rewrites="fast_run"):
    x = T.tensor(dtype="float64", shape=(None, None), name="x")
    gamma = T.tensor(dtype="float64", shape=(1, None), name="gamma")
    beta = T.tensor(dtype="float64", shape=(1, None), name="beta")
    dy = T.tensor(dtype="float64", shape=(None, None), name="dy")
    out, _, _ = T.nnet.bn.batch_normalization_train(x, gamma, beta, axes="per-activation", epsilon=1e-4)
    dx, dgamma, dbeta = mg.grad(None, [x, gamma, beta], known_grads={out: dy})
    return mg.function([x, gamma, beta, dy], [out, dx, dgamma, dbeta], mode=mode, rewrites=rewrites)


def test_unknown_lengths_leave_few_full_size_nodes():
    f = _bn_step("python")
    nodes = f.fgraph.toposort()
    # a length of an elementwise result is read from the inputs, so that result is not kept
    # in memory just to be measured
    for n in nodes:
        if isinstance(n.op, S.ShapeI):
            assert n.inputs[0] in f.fgraph.inputs, n
    # full-size elementwise kernels: the output y, gamma * invstd * dy, dx (x - mean is
    # recomputed where used instead of stored: it was 5 such nodes before)
    full = [n for n in nodes if isinstance(n.op, E.Elemwise) and n.outputs[0].ndim == 2
            and n.outputs[0].type.shape[0] != 1]
    assert len(full) == 3, [str(n.op) for n in full]
    # four sums: the mean's, the variance's, sum(dy * (x - mean)) and sum(dy); sum(x - mean)
    # is sum(x) - n * mean, from the mean's own sum
    reductions = [n for n in nodes if isinstance(n.op, (M.Sum, M.FusedReduce))]
    assert len(reductions) == 4, [str(n.op) for n in reductions]
    assert not any("add(sub(i0, i1))" in str(n.op) for n in reductions), [str(n.op) for n in reductions]


@pytest.mark.parametrize("xshape, gshape", [((5, 4), (1, 4)), ((5, 4), (1, 1)), ((5, 1), (1, 4)), ((0, 4), (1, 4))])
def test_matches_the_unrewritten_graph_with_run_time_broadcasting(mode, xshape, gshape):
    rng = np.random.default_rng(0)
    oshape = (xshape[0], max(xshape[1], gshape[1]))
    args = [rng.standard_normal(xshape), 1 + 0.1 * rng.standard_normal(gshape), 0.1 * rng.standard_normal(gshape),
            rng.standard_normal(oshape)]
    with np.errstate(all="ignore"):
        want = _bn_step("python", rewrites=None)(*args)
        got = _bn_step(mode)(*args)
    for k, (g, w) in enumerate(zip(got, want)):
        assert g.shape == w.shape
        if xshape[0] == 0 and k == 2:
            # an empty batch: the inverse std is NaN, and dgamma = invstd * sum(dy * (x - mean))
            # with the factor outside the (empty, zero) sum is NaN where the original gave 0
            assert np.all(np.isnan(g)) and np.all(w == 0)
            continue
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)
