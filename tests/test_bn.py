"""Batch normalization (T.nnet.bn): values and gradients against an independent numpy
implementation of the paper's equations, the two gradient variants against each other and
against finite differences, edge cases, inference with running statistics, bad arguments,
the seed layer and the seed example."""
import os
import subprocess
import sys

import numpy as np
import pytest

import minigraph as mg
import minigraph.tensor as T
from minigraph.graph.basic import toposort
from minigraph.graph.opfromgraph import OpFromGraph
from minigraph.tensor.nnet import bn
from minigraph.tensor.nnet.bn import BatchNormTrain


def _has_numba() -> bool:
    try:
        from minigraph.backends.numba import NumbaLinker  # noqa: F401
    except ImportError:
        return False
    return True


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASES = [("per-activation", (6, 4), (0,)), ("spatial", (3, 2, 4, 3), (0, 2, 3))]


# --- the paper's equations in numpy (float64), written out term by term ----------------------------

def ref_forward(x, gamma, beta, axes, eps):
    """mu, var (biased), invstd, xhat, y: Algorithm 1 of the paper, keepdims layout."""
    x = x.astype("float64")
    m = np.prod([x.shape[a] for a in axes])
    mu = x.sum(axis=axes, keepdims=True) / m
    var = ((x - mu) ** 2).sum(axis=axes, keepdims=True) / m
    invstd = 1.0 / np.sqrt(var + eps)
    xhat = (x - mu) * invstd
    return mu, var, invstd, xhat, gamma * xhat + beta


def ref_backward(x, gamma, axes, eps, dy):
    """The paper's chain rule: dL/dxhat, dL/dvar, dL/dmu, then dL/dx, dL/dgamma, dL/dbeta."""
    x, dy = x.astype("float64"), dy.astype("float64")
    m = np.prod([x.shape[a] for a in axes])
    mu, var, invstd, xhat, _ = ref_forward(x, gamma, 0.0 * gamma, axes, eps)
    dxhat = dy * gamma
    dvar = np.sum(dxhat * (x - mu), axis=axes, keepdims=True) * -0.5 * (var + eps) ** -1.5
    dmu = np.sum(dxhat * -invstd, axis=axes, keepdims=True) + dvar * np.sum(-2 * (x - mu), axis=axes, keepdims=True) / m
    dx = dxhat * invstd + dvar * 2 * (x - mu) / m + dmu / m
    dgamma = np.sum(dy * xhat, axis=axes, keepdims=True)
    dbeta = np.sum(dy, axis=axes, keepdims=True)
    return dx, dgamma, dbeta


def kept_shape(shape, axes):
    return tuple(n for d, n in enumerate(shape) if d not in axes)


def full_shape(shape, axes):
    return tuple(1 if d in axes else n for d, n in enumerate(shape))


def symbolic(shape, dtype, name):
    return T.tensor(dtype, (None,) * len(shape), name=name)


def bn_training_function(axes_arg, shape, axes, dtype, mode, impl="autodiff", running=True):
    """(function, inputs) computing every BN output and the gradients of sum(out * dy)."""
    x, dy = symbolic(shape, dtype, "x"), symbolic(shape, dtype, "dy")
    gamma, beta = T.tensor(dtype, (None,) * (len(shape) - len(axes)), "gamma"), T.tensor(
        dtype, (None,) * (len(shape) - len(axes)), "beta")
    ins = [x, dy, gamma, beta]
    kwargs = {}
    if running:
        rm, rv = T.tensor(dtype, (None,) * gamma.ndim, "rm"), T.tensor(dtype, (None,) * gamma.ndim, "rv")
        ins += [rm, rv]
        kwargs = dict(running_mean=rm, running_var=rv, running_average_factor=0.3)
    outs = bn.batch_normalization_train(x, gamma, beta, axes=axes_arg, epsilon=1e-4, impl=impl, **kwargs)
    cost = T.sum(outs[0] * dy)
    grads = mg.grad(cost, [x, gamma, beta])
    return mg.function(ins, list(outs) + grads, mode=mode), outs


def random_case(shape, axes, dtype, rng, offset=0.0):
    x = (offset + rng.standard_normal(shape) * 2 + 1).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    ks = kept_shape(shape, axes)
    gamma = rng.uniform(0.5, 1.5, ks).astype(dtype)
    beta = rng.standard_normal(ks).astype(dtype)
    rm = rng.standard_normal(ks).astype(dtype)
    rv = rng.uniform(0.5, 2.0, ks).astype(dtype)
    return x, dy, gamma, beta, rm, rv


def tol(dtype):
    return dict(rtol=2e-4, atol=2e-4) if dtype == "float32" else dict(rtol=1e-10, atol=1e-10)


# --- forward, statistics, running statistics and gradients vs numpy ------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("axes_arg,shape,axes", CASES)
def test_train_matches_paper_equations(axes_arg, shape, axes, dtype, mode, rng):
    f, _ = bn_training_function(axes_arg, shape, axes, dtype, mode)
    x, dy, gamma, beta, rm, rv = random_case(shape, axes, dtype, rng)
    out, mean, invstd, new_rm, new_rv, dx, dgamma, dbeta = f(x, dy, gamma, beta, rm, rv)
    fs = full_shape(shape, axes)
    mu, var, ref_invstd, _, y = ref_forward(x, gamma.reshape(fs), beta.reshape(fs), axes, 1e-4)
    m = np.prod([shape[a] for a in axes])
    for got in (out, mean, invstd, new_rm, new_rv, dx, dgamma, dbeta):
        assert got.dtype == np.dtype(dtype)
    ks = kept_shape(shape, axes)
    assert mean.shape == ks and invstd.shape == ks and dgamma.shape == ks
    np.testing.assert_allclose(out, y, **tol(dtype))
    np.testing.assert_allclose(mean, mu.reshape(ks), **tol(dtype))
    np.testing.assert_allclose(invstd, ref_invstd.reshape(ks), **tol(dtype))
    np.testing.assert_allclose(new_rm, 0.7 * rm + 0.3 * mu.reshape(ks), **tol(dtype))
    np.testing.assert_allclose(new_rv, 0.7 * rv + 0.3 * var.reshape(ks) * m / (m - 1), **tol(dtype))
    rdx, rdgamma, rdbeta = ref_backward(x, gamma.reshape(fs), axes, 1e-4, dy)
    np.testing.assert_allclose(dx, rdx, **tol(dtype))
    np.testing.assert_allclose(dgamma, rdgamma.reshape(ks), **tol(dtype))
    np.testing.assert_allclose(dbeta, rdbeta.reshape(ks), **tol(dtype))


@pytest.mark.parametrize("axes_arg,shape,axes", CASES)
def test_closed_form_equals_autodiff(axes_arg, shape, axes, mode, rng):
    x, dy = symbolic(shape, "float64", "x"), symbolic(shape, "float64", "dy")
    gamma, beta = T.dvector("gamma"), T.dvector("beta")
    grads = {}
    for impl in ("autodiff", "closed_form"):
        out, mean, invstd = bn.batch_normalization_train(x, gamma, beta, axes=axes_arg, impl=impl)
        # gradients arriving at the statistics outputs too, not only at out
        cost = T.sum(out * dy) + T.sum(mean * gamma) + T.sum(invstd * beta)
        grads[impl] = mg.grad(cost, [x, gamma, beta])
    f = mg.function([x, dy, gamma, beta], grads["autodiff"] + grads["closed_form"], mode=mode)
    xv, dyv, gv, bv, _, _ = random_case(shape, axes, "float64", rng)
    vals = f(xv, dyv, gv, bv)
    for a, c in zip(vals[:3], vals[3:]):
        np.testing.assert_allclose(a, c, rtol=1e-10, atol=1e-10)


# Finite differences check the mathematics, so they run on the python reference (each check
# compiles three functions); the numba backend's values of the same gradient graphs are
# compared with numpy above and with the reference in test_second_order_graph_parity.

@pytest.mark.parametrize("impl", ["autodiff", "closed_form"])
@pytest.mark.parametrize("axes_arg,shape,axes", CASES)
def test_gradient_vs_finite_differences(axes_arg, shape, axes, impl, rng):
    ks = kept_shape(shape, axes)
    beta = rng.standard_normal(ks)

    def fn(x, gamma):
        out, mean, invstd = bn.batch_normalization_train(x, gamma, beta, axes=axes_arg, impl=impl)
        return T.tanh(out) + T.sum(mean) * T.sum(invstd)

    x = rng.standard_normal(shape) + 1.5
    gamma = rng.uniform(0.5, 1.5, ks)
    assert mg.verify_grad(fn, [x, gamma], n_tests=1, rng=rng, mode="python")


@pytest.mark.parametrize("impl", ["autodiff", "closed_form"])
@pytest.mark.parametrize("axes_arg,shape,axes", CASES)
def test_second_order_gradient_vs_finite_differences(axes_arg, shape, axes, impl, rng):
    ks = kept_shape(shape, axes)
    beta = rng.standard_normal(ks)
    w = rng.standard_normal(shape)

    def first_order(x, gamma):
        out, _, _ = bn.batch_normalization_train(x, gamma, beta, axes=axes_arg, impl=impl)
        cost = T.sum(T.tanh(out) * w)
        gx, ggamma = mg.grad(cost, [x, gamma])
        return gx + T.sum(ggamma)  # depends on both gradients, so grad-of-grad covers both

    x = rng.standard_normal(shape)
    gamma = rng.uniform(0.5, 1.5, ks)
    assert mg.verify_grad(first_order, [x, gamma], n_tests=1, rng=rng, mode="python")


def second_order_graph(impl, beta, w):
    x, gamma, v = T.dmatrix("x"), T.dvector("gamma"), T.dmatrix("v")
    out, _, _ = bn.batch_normalization_train(x, gamma, beta, impl=impl)
    gx, ggamma = mg.grad(T.sum(T.tanh(out) * w), [x, gamma])
    hv = mg.grad(T.sum(gx * v) + T.sum(ggamma), [x, gamma])  # Hessian-vector products
    return [x, gamma, v], [gx, ggamma] + hv


def test_variants_agree_to_second_order(rng):
    shape = (5, 3)
    beta, w = rng.standard_normal(3), rng.standard_normal(shape)
    ins, outs = second_order_graph("autodiff", beta, w)
    ins_c, outs_c = second_order_graph("closed_form", beta, w)
    args = [rng.standard_normal(shape), rng.uniform(0.5, 1.5, 3), rng.standard_normal(shape)]
    vals = mg.function(ins + ins_c, outs + outs_c, mode="python")(*args, *args)
    for a, b in zip(vals[:4], vals[4:]):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)


@pytest.mark.skipif(not _has_numba(), reason="the numba backend is not available")
def test_second_order_graph_parity(rng):
    """The grad-of-grad graph gives the same numbers on the numba backend as on the python
    reference."""
    shape = (5, 3)
    beta, w = rng.standard_normal(3), rng.standard_normal(shape)
    ins, outs = second_order_graph("autodiff", beta, w)
    args = [rng.standard_normal(shape), rng.uniform(0.5, 1.5, 3), rng.standard_normal(shape)]
    ref = mg.function(ins, outs, mode="python")(*args)
    got = mg.function(ins, outs, mode="numba")(*args)
    for a, b in zip(ref, got):
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-9)


# --- the op design -------------------------------------------------------------------------------

def test_training_bn_is_one_node_with_statistics_as_outputs():
    x, gamma, beta = T.matrix("x"), T.vector("gamma"), T.vector("beta")
    rm, rv = T.vector("rm"), T.vector("rv")
    outs = bn.batch_normalization_train(x, gamma, beta, running_mean=rm, running_var=rv)
    nodes = toposort(outs)
    assert len(nodes) == 1 and isinstance(nodes[0].op, BatchNormTrain) and isinstance(nodes[0].op, OpFromGraph)
    assert [o.owner for o in outs] == [nodes[0]] * 5
    text = mg.debugprint(outs, file="str", inner_graphs=False)
    assert text.count("[id A]") == 5 and "[id B]" not in text
    # the inner graph holds the statistics as named nodes
    names = {v.name for n in toposort(nodes[0].op.inner_outputs) for v in n.outputs}
    assert {"mean", "var", "invstd", "x_centered"} <= names


def test_identical_bn_ops_are_equal_and_merge_keys_differ_by_parameters():
    x, gamma, beta = T.matrix("x"), T.vector("gamma"), T.vector("beta")
    a = bn.batch_normalization_train(x, gamma, beta)[0].owner.op
    b = bn.batch_normalization_train(T.matrix("y"), T.vector(), T.vector())[0].owner.op
    assert a == b and hash(a) == hash(b)
    assert a != bn.batch_normalization_train(x, gamma, beta, epsilon=1e-3)[0].owner.op
    assert a != bn.batch_normalization_train(x, gamma, beta, impl="closed_form")[0].owner.op
    assert "batch_norm_train" in str(a) and "axes=0" in str(a)


def test_autodiff_gradient_graph_goes_through_statistics_nodes():
    x, gamma, beta = T.matrix("x"), T.vector("gamma"), T.vector("beta")
    out, _, _ = bn.batch_normalization_train(x, gamma, beta)
    gx = mg.grad(T.sum(out ** 2), x)
    names = {v.name for n in toposort([gx]) for v in n.outputs}
    assert {"mean", "var", "invstd"} <= names  # the inner statistics, inlined, reached by the chain rule
    out_c, _, _ = bn.batch_normalization_train(x, gamma, beta, impl="closed_form")
    gx_c = mg.grad(T.sum(out_c ** 2), x)
    bn_nodes = [n for n in toposort([gx_c]) if isinstance(n.op, BatchNormTrain)]
    assert len(bn_nodes) == 1  # the closed form reads mean and invstd from the node's outputs
    users = {id(v) for n in toposort([gx_c]) if not isinstance(n.op, BatchNormTrain) for v in n.inputs}
    assert id(bn_nodes[0].outputs[1]) in users and id(bn_nodes[0].outputs[2]) in users


def _has_rewrites() -> bool:
    try:
        from minigraph.rewriting import rewrite_graph  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not _has_rewrites(), reason="the rewrite pipeline is not available")
def test_compiled_training_graph_computes_the_statistics_once():
    """The rewrites inline the node and merge its forward copy with the gradient's copy."""
    x, gamma, beta, dy = T.matrix("x"), T.vector("gamma"), T.vector("beta"), T.matrix("dy")
    out, _, _ = bn.batch_normalization_train(x, gamma, beta)
    f = mg.function([x, gamma, beta, dy], [out] + mg.grad(T.sum(out * dy), [x, gamma, beta]), mode="python")
    nodes = f.fgraph.toposort()
    assert not any(isinstance(n.op, OpFromGraph) for n in nodes)
    assert sum(o.name == "mean" for n in nodes for o in n.outputs) == 1


def test_inline_gives_the_same_values(mode, rng):
    x, gamma, beta = T.tensor4("x"), T.vector("gamma"), T.vector("beta")
    outs = bn.batch_normalization_train(x, gamma, beta, axes="spatial")
    inlined = outs[0].owner.op.inline([x, gamma, beta])
    assert not any(isinstance(n.op, OpFromGraph) for n in toposort(inlined))
    f = mg.function([x, gamma, beta], list(outs) + inlined, mode=mode)
    vals = f(rng.standard_normal((2, 3, 2, 2)).astype("float32"), np.ones(3, "float32"), np.zeros(3, "float32"))
    for a, b in zip(vals[:3], vals[3:]):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_static_shapes_are_inferred_from_the_outer_inputs():
    x = T.matrix("x", shape=(None, 5))
    gamma = mg.shared(np.ones(5, "float32"), name="gamma")
    beta = mg.shared(np.zeros(5, "float32"), name="beta")
    out, mean, invstd = bn.batch_normalization_train(x, gamma, beta)
    assert out.type.shape == (None, 5) and mean.type.shape == (5,) and invstd.type.shape == (5,)


# --- edge cases ------------------------------------------------------------------------------------

@pytest.mark.parametrize("impl", ["autodiff", "closed_form"])
def test_batch_of_one(impl, mode, rng):
    """m = 1: zero variance, out = beta, mean = x, finite gradients; the running variance
    uses the biased (zero) variance since m / (m - 1) is undefined."""
    f, _ = bn_training_function("per-activation", (1, 3), (0,), "float64", mode, impl=impl)
    x, dy, gamma, beta, rm, rv = random_case((1, 3), (0,), "float64", rng)
    out, mean, invstd, new_rm, new_rv, dx, dgamma, dbeta = f(x, dy, gamma, beta, rm, rv)
    np.testing.assert_allclose(out, beta[None, :], atol=1e-12)
    np.testing.assert_allclose(mean, x[0])
    np.testing.assert_allclose(invstd, 1 / np.sqrt(1e-4))
    np.testing.assert_allclose(new_rv, 0.7 * rv)
    for g in (dx, dgamma, dbeta):
        assert np.all(np.isfinite(g))
    np.testing.assert_allclose(dx, 0, atol=1e-9)
    np.testing.assert_allclose(dbeta, dy[0])


def test_constant_columns(mode, rng):
    f, _ = bn_training_function("per-activation", (5, 3), (0,), "float64", mode)
    x, dy, gamma, beta, rm, rv = random_case((5, 3), (0,), "float64", rng)
    x[:, 1] = 7.0
    out, mean, invstd, _, new_rv, dx, dgamma, dbeta = f(x, dy, gamma, beta, rm, rv)
    np.testing.assert_allclose(out[:, 1], beta[1], atol=1e-12)
    np.testing.assert_allclose(invstd[1], 1 / np.sqrt(1e-4))
    np.testing.assert_allclose(new_rv[1], 0.7 * rv[1])
    rdx, rdgamma, _ = ref_backward(x, gamma[None, :], (0,), 1e-4, dy)
    np.testing.assert_allclose(dx, rdx, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(dgamma, rdgamma[0], rtol=1e-9, atol=1e-9)
    assert np.all(np.isfinite(dx))


def test_large_offsets_keep_float32_precision(mode, rng):
    """x ~ 1e4 + noise: E[x^2] - E[x]^2 in float32 would lose the variance entirely; the two-
    pass variance keeps it to float32's resolution of the input itself."""
    shape = (64, 3)
    f, _ = bn_training_function("per-activation", shape, (0,), "float32", mode)
    _, dy, gamma, beta, rm, rv = random_case(shape, (0,), "float32", rng)
    x = (1e4 + rng.standard_normal(shape)).astype("float32")
    out, mean, invstd, _, new_rv, dx, _, _ = f(x, dy, gamma, beta, rm, rv)
    mu, var, ref_invstd, _, y = ref_forward(x, gamma[None], beta[None], (0,), 1e-4)
    naive = np.mean(x * x, axis=0) - np.mean(x, axis=0) ** 2  # for contrast: the one-pass formula in float32
    assert np.max(np.abs(naive - var[0]) / var[0]) > 0.05
    np.testing.assert_allclose(1 / invstd ** 2 - 1e-4, var[0], rtol=1e-3)
    np.testing.assert_allclose(invstd, ref_invstd[0], rtol=1e-3)
    np.testing.assert_allclose(out, y, atol=5e-3)
    rdx, _, _ = ref_backward(x, gamma[None], (0,), 1e-4, dy)
    np.testing.assert_allclose(dx, rdx, atol=5e-3)


def test_gamma_in_full_ndim_layout(mode, rng):
    shape, axes = (3, 2, 4, 3), (0, 2, 3)
    x = T.tensor4("x")
    g_full = T.tensor("float64", (1, None, 1, 1), "g_full")
    b_full = T.tensor("float64", (1, None, 1, 1), "b_full")
    g_red, b_red = T.dvector("g"), T.dvector("b")
    xd = T.cast(x, "float64")
    full = bn.batch_normalization_train(xd, g_full, b_full, axes="spatial")
    red = bn.batch_normalization_train(xd, g_red, b_red, axes="spatial")
    assert full[1].type.shape == (1, None, 1, 1) and red[1].ndim == 1
    gf = mg.grad(T.sum(T.tanh(full[0])), [g_full, b_full])
    gr = mg.grad(T.sum(T.tanh(red[0])), [g_red, b_red])
    f = mg.function([x, g_full, b_full, g_red, b_red], list(full) + list(red) + gf + gr, mode=mode)
    xv = rng.standard_normal(shape).astype("float32")
    gv, bv = rng.uniform(0.5, 1.5, 2), rng.standard_normal(2)
    vals = f(xv, gv.reshape(1, 2, 1, 1), bv.reshape(1, 2, 1, 1), gv, bv)
    fo, fm, fi, ro, rm_, ri, dgf, dbf, dgr, dbr = vals
    np.testing.assert_allclose(fo, ro, rtol=1e-12)
    np.testing.assert_allclose(fm.reshape(2), rm_, rtol=1e-12)
    np.testing.assert_allclose(fi.reshape(2), ri, rtol=1e-12)
    assert dgf.shape == (1, 2, 1, 1)
    np.testing.assert_allclose(dgf.reshape(2), dgr, rtol=1e-10)
    np.testing.assert_allclose(dbf.reshape(2), dbr, rtol=1e-10)


def test_inference_after_training_steps_uses_running_statistics(mode, rng):
    """Several training steps update the running statistics (Algorithm 2's moving averages);
    inference then applies the formula with them."""
    shape, axes = (4, 3, 2, 2), (0, 2, 3)
    x = T.tensor4("x")
    gamma = mg.shared(rng.uniform(0.5, 1.5, 3).astype("float32"), name="gamma")
    beta = mg.shared(rng.standard_normal(3).astype("float32"), name="beta")
    rm = mg.shared(np.zeros(3, "float32"), name="rm")
    rv = mg.shared(np.ones(3, "float32"), name="rv")
    out, _, _, new_rm, new_rv = bn.batch_normalization_train(x, gamma, beta, "spatial", 1e-4, 0.25, rm, rv)
    train = mg.function([x], out, updates=[(rm, new_rm), (rv, new_rv)], mode=mode)
    infer = mg.function([x], bn.batch_normalization_test(x, gamma, beta, rm, rv, "spatial", 1e-4), mode=mode)
    ref_m, ref_v = np.zeros(3), np.ones(3)
    m = 4 * 2 * 2
    for step in range(4):
        xb = (rng.standard_normal(shape) * (1 + step) + step).astype("float32")
        train(xb)
        ref_m = 0.75 * ref_m + 0.25 * xb.astype("float64").mean(axis=axes)
        ref_v = 0.75 * ref_v + 0.25 * xb.astype("float64").var(axis=axes) * m / (m - 1)
    np.testing.assert_allclose(rm.get_value(), ref_m, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(rv.get_value(), ref_v, rtol=1e-5, atol=1e-5)
    xt = rng.standard_normal(shape).astype("float32")
    want = (gamma.get_value()[None, :, None, None] * (xt - ref_m[None, :, None, None])
            / np.sqrt(ref_v[None, :, None, None] + 1e-4) + beta.get_value()[None, :, None, None])
    np.testing.assert_allclose(infer(xt), want, rtol=1e-4, atol=1e-4)


def test_batch_normalization_plain_formula(mode, rng):
    x, g, b, mu, sd = T.dmatrix("x"), T.dvector("g"), T.dvector("b"), T.dvector("mu"), T.dvector("sd")
    f = mg.function([x, g, b, mu, sd], bn.batch_normalization(x, g, b, mu, sd), mode=mode)
    xv, gv, bv, mv, sv = rng.standard_normal((4, 3)), rng.standard_normal(3), rng.standard_normal(3), \
        rng.standard_normal(3), rng.uniform(0.5, 2, 3)
    np.testing.assert_allclose(f(xv, gv, bv, mv, sv), (xv - mv) * (gv / sv) + bv, rtol=1e-12)


# --- bad arguments ---------------------------------------------------------------------------------

def _train(x=None, gamma=None, beta=None, **kw):
    x = T.tensor4("x") if x is None else x
    gamma = T.vector("gamma") if gamma is None else gamma
    beta = T.vector("beta") if beta is None else beta
    return bn.batch_normalization_train(x, gamma, beta, **{"axes": "spatial", **kw})


@pytest.mark.parametrize("call,match", [
    (lambda: _train(epsilon=1e-6), "epsilon"),
    (lambda: _train(epsilon=9.99e-6), "epsilon"),
    (lambda: _train(gamma=T.matrix()), "dimensions"),                       # bad ndim
    (lambda: _train(beta=T.tensor3()), "dimensions"),
    (lambda: _train(axes=(0, 4)), "out of range"),                           # axis out of range
    (lambda: _train(axes=(-1,)), "out of range"),
    (lambda: _train(axes=()), "at least one axis"),
    (lambda: _train(axes=(0, 0)), "repeated"),
    (lambda: _train(axes="per-channel"), "invalid axes"),
    (lambda: _train(running_mean=T.vector()), "together"),                   # only one running stat
    (lambda: _train(running_var=T.vector()), "together"),
    (lambda: _train(gamma=T.tensor("float32", (1, None, 1, 1))), "same layout"),   # mixed layouts
    (lambda: _train(running_mean=T.tensor("float32", (1, None, 1, 1)), running_var=T.vector()), "same layout"),
    (lambda: _train(gamma=T.tensor4(), beta=T.tensor4()), "length 1 on the normalized axes"),
    (lambda: _train(impl="cudnn"), "impl"),
    (lambda: _train(running_average_factor=1.5, running_mean=T.vector(), running_var=T.vector()), "running_average"),
    (lambda: _train(x=T.tensor4(shape=(None, 3, None, None)), gamma=mg.shared(np.ones(4, "float32"))), "length 4 != 3"),
    (lambda: bn.batch_normalization_test(T.matrix(), T.vector(), T.vector(), T.vector(), T.vector(),
                                         epsilon=1e-7), "epsilon"),
    (lambda: bn.batch_normalization_test(T.matrix(), T.vector(), T.vector(), T.matrix(shape=(1, None)),
                                         T.vector()), "same layout"),
    (lambda: bn.batch_normalization_test(T.matrix(), T.vector(), T.vector(), T.vector(), T.vector(),
                                         axes=(2,)), "out of range"),
])
def test_bad_arguments_raise_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_bad_argument_message_names_function_types_and_line():
    x = T.tensor4("images")
    with pytest.raises(ValueError) as info:
        bn.batch_normalization_train(x, T.matrix("gamma"), T.vector("beta"), axes="spatial")
    text = str(info.value)
    assert text.startswith("batch_normalization_train: gamma has 2 dimensions")
    assert "'images': float32[?, ?, ?, ?]" in text and "'gamma': float32[?, ?]" in text
    assert "test_bn.py" in text and "T.matrix(\"gamma\")" in text  # the user's line


def test_epsilon_1e_5_is_accepted_for_float32():
    out, _, _ = _train(epsilon=1e-5)
    assert out.owner.op.epsilon == 1e-5  # compared as given, not after rounding to float32
    bn.batch_normalization_test(T.matrix(), T.vector(), T.vector(), T.vector(), T.vector(), epsilon=1e-5)


def test_integer_input_is_a_type_error():
    with pytest.raises(TypeError, match="float"):
        bn.batch_normalization_train(T.imatrix("x"), T.vector(), T.vector())


# --- the layer and the seed example ------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(6, 4), (3, 2, 3, 2)])
def test_layer_training_then_inference(shape, mode, rng):
    from minigraph.nn.batchnorm import BatchNormalizationLayer

    x = T.matrix("x") if len(shape) == 2 else T.tensor4("x")
    flag = mg.shared(np.int8(1), name="training")
    layer = BatchNormalizationLayer(x, shape=shape, training=flag)
    assert layer.params == [layer.gamma, layer.beta]
    axes = (0,) if len(shape) == 2 else (0, 2, 3)
    cost = T.mean(layer.output ** 2 + layer.output)
    sgd = [(p, p - 0.1 * g) for p, g in zip(layer.params, mg.grad(cost, layer.params))]
    train = mg.function([x], cost, updates=sgd + layer.updates, mode=mode)
    evaluate = mg.function([x], layer.output, mode=mode)
    batches = [(rng.standard_normal(shape) * 2 + 3).astype("float32") for _ in range(3)]
    for xb in batches:
        fs = full_shape(shape, axes)
        _, _, _, _, y = ref_forward(xb, layer.gamma.get_value().reshape(fs), layer.beta.get_value().reshape(fs),
                                    axes, 1e-5)
        np.testing.assert_allclose(evaluate(xb), y, rtol=1e-4, atol=1e-4)  # training mode: batch statistics
        train(xb)
    m = np.prod([shape[a] for a in axes])
    ref_m, ref_v = np.zeros(shape[1]), np.ones(shape[1])
    for xb in batches:
        ref_m = 0.9 * ref_m + 0.1 * xb.astype("float64").mean(axis=axes)
        ref_v = 0.9 * ref_v + 0.1 * xb.astype("float64").var(axis=axes) * m / (m - 1)
    np.testing.assert_allclose(layer.running_mean.get_value(), ref_m, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(layer.running_var.get_value(), ref_v, rtol=1e-5, atol=1e-5)
    flag.set_value(np.int8(0))
    xt = batches[0]
    fs = full_shape(shape, axes)
    want = (layer.gamma.get_value().reshape(fs) * (xt - ref_m.reshape(fs)) / np.sqrt(ref_v.reshape(fs) + 1e-5)
            + layer.beta.get_value().reshape(fs))
    np.testing.assert_allclose(evaluate(xt), want, rtol=1e-4, atol=1e-4)


def test_layer_rejects_bad_shapes():
    from minigraph.nn.batchnorm import BatchNormalizationLayer

    with pytest.raises(ValueError, match="shape"):
        BatchNormalizationLayer(T.tensor3("x"), shape=(2, 3, 4))
    with pytest.raises(ValueError, match="dimensions"):
        BatchNormalizationLayer(T.matrix("x"), shape=(2, 3, 4, 4))


def test_seed_example_layer_matches_numpy(mode):
    """The notes' class, imports changed only, on FC and conv shapes (in process, per backend)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("seed_bn_layer", os.path.join(ROOT, "examples", "seed_bn_layer.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rng = np.random.default_rng(0)
    assert module.check((10, 7), rng, mode) < 1e-4
    assert module.check((4, 3, 5, 4), rng, mode) < 1e-4


def test_seed_example_runs_as_a_script():
    result = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "seed_bn_layer.py")],
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "MINIGRAPH_MODE": "python"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("matches numpy") == 2
