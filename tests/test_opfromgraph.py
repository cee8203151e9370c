"""OpFromGraph: composite ops defined by an inner graph (values, types, equality, inlining,
gradients derived by the autodiff, second order, nesting, bad inner graphs)."""
import numpy as np
import pytest

import minigraph as mg
import minigraph.tensor as T
from minigraph.graph.basic import toposort
from minigraph.graph.opfromgraph import OpFromGraph, canonical_form


def axpy_and_product(dtype="float64", name="axpy"):
    x, y = T.tensor(dtype, (None,), "x"), T.tensor(dtype, (None,), "y")
    return OpFromGraph([x, y], [2 * x + y, T.tanh(x * y)], name=name)


def test_values_and_one_node(mode, rng):
    op = axpy_and_product()
    a, b = T.dvector("a"), T.dvector("b")
    z, w = op(a, b)
    assert toposort([z, w]) == [z.owner] and str(z.owner.op) == "axpy"
    f = mg.function([a, b], [z, w], mode=mode)
    av, bv = rng.standard_normal(4), rng.standard_normal(4)
    got_z, got_w = f(av, bv)
    np.testing.assert_allclose(got_z, 2 * av + bv, rtol=1e-12)
    np.testing.assert_allclose(got_w, np.tanh(av * bv), rtol=1e-12)


def test_equality_by_canonical_form():
    assert axpy_and_product() == axpy_and_product()
    assert hash(axpy_and_product()) == hash(axpy_and_product())
    assert axpy_and_product() != axpy_and_product(name="other")
    assert axpy_and_product("float32") != axpy_and_product("float64")
    x, y = T.dvector("x"), T.dvector("y")
    assert OpFromGraph([x, y], [3 * x + y]) != OpFromGraph([x, y], [2 * x + y])  # constants count
    assert OpFromGraph([x, y], [x - y]) != OpFromGraph([y, x], [x - y])  # input order counts
    p, q = T.dvector("p"), T.dvector("q")
    assert canonical_form([x, y], [x - y]) == canonical_form([p, q], [p - q])  # names and identities do not count


def test_make_node_checks_types():
    op = axpy_and_product()
    with pytest.raises(TypeError, match="axpy: input 0 has type float32"):
        op(T.fvector("a"), T.dvector("b"))
    with pytest.raises(TypeError, match="expects 2 inputs"):
        op(T.dvector("a"))
    with pytest.raises(TypeError, match="inner graph expects"):
        op(T.dmatrix("a"), T.dvector("b"))


def test_output_types_follow_static_outer_shapes():
    op = axpy_and_product()
    z, w = op(T.dvector("a", shape=(5,)), T.dvector("b"))
    assert z.type.shape == (5,) and w.type.shape == (5,)
    with pytest.raises(ValueError, match="inner graph rejects"):
        op(T.dvector("a", shape=(5,)), T.dvector("b", shape=(4,)))


def test_inline_copies_the_inner_graph(mode, rng):
    op = axpy_and_product()
    a, b = T.dvector("a"), T.dvector("b")
    inlined = op.inline([a, b])
    assert not any(isinstance(n.op, OpFromGraph) for n in toposort(inlined))
    assert not set(map(id, op.inner_inputs)) & {id(v) for n in toposort(inlined) for v in n.inputs}
    f = mg.function([a, b], list(op(a, b)) + inlined, mode=mode)
    vals = f(rng.standard_normal(3), rng.standard_normal(3))
    np.testing.assert_allclose(vals[0], vals[2])
    np.testing.assert_allclose(vals[1], vals[3])


# finite differences check the mathematics: on the python reference only (numba compile cost);
# the backends' values of these gradient graphs are compared in test_nested_composite_ops

def test_gradient_vs_finite_differences(rng):
    op = axpy_and_product()

    def fn(a, b):
        z, w = op(a, b)
        return z * w + T.sin(w)

    assert mg.verify_grad(fn, [rng.standard_normal(4), rng.standard_normal(4)], n_tests=1, rng=rng, mode="python")


def test_second_order_gradient(rng):
    op = axpy_and_product()

    def fn(a, b):
        z, w = op(a, b)
        ga, gb = mg.grad(T.sum(z * w), [a, b])
        return ga * gb

    assert mg.verify_grad(fn, [rng.standard_normal(3), rng.standard_normal(3)], n_tests=1, rng=rng, mode="python")


def test_gradient_graph_shows_the_inner_nodes():
    x = T.dvector("x")
    centered = x - T.mean(x)
    centered.name = "centered"
    op = OpFromGraph([x], [centered * centered], name="sq_dev")
    a = T.dvector("a")
    g = mg.grad(T.sum(op(a)), a)
    names = {v.name for n in toposort([g]) for v in n.outputs}
    assert "centered" in names
    # the forward node is there only for the shape of the output's gradient
    assert sum(isinstance(n.op, OpFromGraph) for n in toposort([g])) <= 1


def test_input_passed_twice_gets_its_gradient_once(mode, rng):
    x, y = T.dvector("x"), T.dvector("y")
    op = OpFromGraph([x, y], [x * y])
    a = T.dvector("a")
    g = mg.grad(T.sum(op(a, a)), a)
    av = rng.standard_normal(3)
    np.testing.assert_allclose(mg.function([a], g, mode=mode)(av), 2 * av, rtol=1e-12)


def test_output_that_is_an_input_and_integer_inputs(mode, rng):
    x, k = T.dvector("x"), T.lscalar("k")
    op = OpFromGraph([x, k], [x, x * T.cast(k, "float64")], name="passthrough")
    a, n = T.dvector("a"), T.lscalar("n")
    same, scaled = op(a, n)
    g = mg.grad(T.sum(same) + T.sum(scaled), a)
    f = mg.function([a, n], [same, scaled, g], mode=mode)
    av = rng.standard_normal(3)
    s, sc, gv = f(av, 3)
    np.testing.assert_allclose(s, av)
    np.testing.assert_allclose(sc, 3 * av)
    np.testing.assert_allclose(gv, np.full(3, 4.0))

    # perform never returns an input or a view of one (downstream in-place ops could write it)
    m = T.dmatrix("m")
    node = OpFromGraph([m], [m, m.T])(T.dmatrix("q"))[0].owner
    mv = rng.standard_normal((2, 3))
    for o in node.op.perform(node, [mv]):
        assert not np.may_share_memory(o, mv)


def test_disconnected_inputs_get_no_gradient():
    x, y = T.dvector("x"), T.dvector("y")
    op = OpFromGraph([x, y], [2 * x, T.exp(y)])
    a, b = T.dvector("a"), T.dvector("b")
    first, _ = op(a, b)
    grads = op.grad([a, b], list(first.owner.outputs), [T.ones_like(first), None])
    assert grads[1] is None and grads[0] is not None
    with pytest.raises(ValueError, match="disconnected"):
        mg.grad(T.sum(first), b)


def test_nested_composite_ops(mode, rng):
    inner = axpy_and_product()
    p, q = T.dvector("p"), T.dvector("q")
    z, w = inner(p, q)
    outer = OpFromGraph([p, q], [z * w], name="outer")
    a, b = T.dvector("a"), T.dvector("b")
    out = outer(a, b)
    g = mg.grad(T.sum(out), [a, b])
    av, bv = rng.standard_normal(3), rng.standard_normal(3)
    got, ga, gb = mg.function([a, b], [out] + g, mode=mode)(av, bv)
    np.testing.assert_allclose(got, (2 * av + bv) * np.tanh(av * bv), rtol=1e-12)
    t = np.tanh(av * bv)
    np.testing.assert_allclose(ga, 2 * t + (2 * av + bv) * (1 - t ** 2) * bv, rtol=1e-10)
    np.testing.assert_allclose(gb, t + (2 * av + bv) * (1 - t ** 2) * av, rtol=1e-10)


def test_bad_inner_graphs():
    x, free = T.dvector("x"), T.dvector("free")
    with pytest.raises(ValueError, match="neither an inner input nor a constant"):
        OpFromGraph([x], [x + free])
    with pytest.raises(TypeError, match="root variables"):
        OpFromGraph([x + 1], [x])
    with pytest.raises(ValueError, match="twice"):
        OpFromGraph([x, x], [x])
    with pytest.raises(ValueError, match="at least one output"):
        OpFromGraph([x], [])
