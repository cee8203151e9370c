"""Graph rewrites, rule by rule: the expected graph (compared by its printed listing) and the
same values before and after on random inputs (python reference interpreter)."""
import numpy as np
import pytest

import minigraph as mg
import minigraph.tensor as T
from minigraph.backends.python import PythonLinker
from minigraph.graph.fg import FunctionGraph
from minigraph.printing import listing
from minigraph.rewriting import RewriteLog, rewrite_graph
from minigraph.rewriting.canonicalize import CANONICALIZE_RULES
from minigraph.rewriting.constant_folding import constant_folding
from minigraph.rewriting.framework import LocalPass
from minigraph.rewriting.fusion import fuse_elemwise, fuse_reductions
from minigraph.rewriting.inplace import inplace
from minigraph.rewriting.merge import merge
from minigraph.rewriting.shapes import SHAPE_RULES
from minigraph.rewriting.stabilize import STABILIZE_RULES
from minigraph.tensor import elemwise as E
from minigraph.tensor import math as M
from minigraph.tensor import shape_ops as S
from minigraph.tensor.nnet.basic import SoftmaxCrossEntropy

LOCAL = SHAPE_RULES + [constant_folding] + STABILIZE_RULES + CANONICALIZE_RULES


def evaluate(fgraph, values):
    return PythonLinker(fgraph)(list(values))


def rewritten(inputs, outputs, rules=LOCAL, passes=()):
    """A FunctionGraph of ``outputs`` after the local ``rules`` (and global ``passes``), and its log."""
    fg = FunctionGraph(inputs, outputs)
    log = RewriteLog()
    if rules:
        LocalPass("test", rules).run(fg, log)
    for p in passes:
        p(fg, log)
    assert not log.failures, log.failures
    return fg, log


def check(inputs, outputs, expected, values, fired, rules=LOCAL, passes=(), rtol=1e-6):
    """Structural (listing equals the expected graph's) and semantic (same values) check."""
    outputs = outputs if isinstance(outputs, list) else [outputs]
    expected = expected if isinstance(expected, list) else [expected]
    fg, log = rewritten(inputs, outputs, rules, passes)
    assert listing(fg.outputs) == listing(expected), "\n" + str(log)
    assert fired in log.counts(), log.counts()
    before = evaluate(FunctionGraph(inputs, outputs), values)
    after = evaluate(fg, values)
    for b, a in zip(before, after):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-12)
    return fg, log


@pytest.fixture
def xs(rng):
    x = T.dmatrix("x")
    y = T.dmatrix("y")
    return x, y, rng.standard_normal((3, 4)), rng.standard_normal((3, 4))


# --- merge and constant folding ------------------------------------------------------------

def test_merge_identical_nodes_and_constants(xs):
    x, y, xv, yv = xs
    out = T.exp(x) * 2.0 + T.exp(x) * 2.0
    e = T.exp(x)
    m = e * 2.0
    fg, log = check([x], out, m + m, [xv], "merge", rules=(), passes=[merge])
    assert log.counts()["merge"] == 2 and log.counts()["merge_constants"] == 1


def test_constant_folding_uses_perform(xs):
    x, y, xv, yv = xs
    out = x + T.exp(T.constant(np.float64(0.0))) * 3.0
    check([x], out, x + T.constant(np.full((1, 1), 3.0)), [xv], "constant_folding", rules=[constant_folding])


def test_constant_folding_keeps_large_results():
    x = T.dvector("x")
    big = T.alloc(T.constant(1.0, dtype="float64"), 5000)
    fg, log = rewritten([x], [big * 2.0], rules=[constant_folding])
    assert "constant_folding" not in log.counts()


# --- canonicalization ----------------------------------------------------------------------

@pytest.mark.parametrize("build, expect, rule", [
    (lambda x: x * 1.0, lambda x: x, "local_neutral_element"),
    (lambda x: 1.0 * x, lambda x: x, "local_neutral_element"),
    (lambda x: x + 0.0, lambda x: x, "local_neutral_element"),
    (lambda x: x - 0.0, lambda x: x, "local_right_neutral"),
    (lambda x: x / 1.0, lambda x: x, "local_right_neutral"),
    (lambda x: x ** 1.0, lambda x: x, "local_right_neutral"),
    (lambda x: 0.0 - x, lambda x: -x, "local_zero_minus"),
    (lambda x: -(-x), lambda x: x, "local_double_neg"),
    (lambda x: x / 4.0, lambda x: x * 0.25, "local_div_by_power_of_two"),
    (lambda x: x ** 2.0, lambda x: T.sqr(x), "local_pow_special"),
    (lambda x: x ** 0.5, lambda x: T.sqrt(x), "local_pow_special"),
    (lambda x: T.log(T.exp(x)), lambda x: x, "local_exp_log"),
    (lambda x: T.exp(T.log(T.sqr(x))), lambda x: T.sqr(x), "local_exp_log"),
])
def test_canonicalize_rule(xs, build, expect, rule):
    x, y, xv, yv = xs
    check([x], build(x), expect(x), [np.abs(xv) + 0.5], rule)


def test_flatten_add_mul_keeps_left_to_right_order(xs):
    x, y, xv, yv = xs
    z = T.dmatrix("z")
    check([x, y, z], (x + y) + z, T.add(x, y, z), [xv, yv, xv * 3], "local_flatten_add_mul")
    check([x, y, z], (x * y) * z, T.mul(x, y, z), [xv, yv, xv * 3], "local_flatten_add_mul")
    # a + (b + c) would round differently: left alone
    fg, log = rewritten([x, y, z], [x + (y + z)])
    assert "local_flatten_add_mul" not in log.counts()


def test_inexact_rewrites_are_not_taken(xs):
    x, y, xv, yv = xs
    for out in (x / 3.0, x - x, x / x, T.exp(T.log(x))):
        fg, log = rewritten([x], [out])
        assert len(log) == 0, (out, str(log))
    # x - x is 0 for integers
    i = T.lmatrix("i")
    check([i], i - i, T.zeros_like(i), [np.arange(6).reshape(2, 3)], "local_sub_self")
    # x / 3 and x * (1/3) differ in the last place for some x: the reason it is left alone
    v = np.float64(0.1) * np.arange(1, 2000)
    assert np.any(v / 3.0 != v * (1 / 3.0))
    assert np.all(v / 4.0 == v * 0.25)


# --- shapes ----------------------------------------------------------------------------------

def test_static_shapes_become_constants():
    x = T.tensor("float64", (3, None), "x")
    out = T.cast(x.shape[0], "float64") * x
    fg, log = rewritten([x], [out])
    assert "local_shape_constant" in log.counts() or "constant_folding" in log.counts()
    assert not any(isinstance(n.op, (S.Shape, S.ShapeI)) for n in fg.toposort())
    np.testing.assert_allclose(evaluate(fg, [np.ones((3, 2))])[0], 3 * np.ones((3, 2)))


def test_shape_of_intermediate_becomes_shape_of_root(xs):
    x, y, xv, yv = xs
    out = T.cast(S.ShapeI(0)(T.tanh(x + 1.0)), "float64")
    check([x], out, T.cast(S.ShapeI(0)(x), "float64"), [xv], "local_shape_i_canonical")
    out = T.cast(T.tanh(x + 1.0).shape[0], "float64")
    check([x], out, T.cast(S.ShapeI(0)(x), "float64"), [xv], "local_shape_of_roots")


def test_dropout_mask_no_longer_waits_for_the_layer_output(xs):
    x, y, xv, yv = xs

    def dropout_of_tanh(rewrites):
        h = T.tanh(x)
        mask = mg.RandomStreams(0).binomial(h.shape, n=1, p=0.5, dtype="float64")
        return mg.function([x], h * mask * 2.0, mode="python", rewrites=rewrites)

    f = dropout_of_tanh("fast_run")
    fused = [n for n in f.fgraph.toposort() if isinstance(n.op, E.Elemwise)]
    assert len(fused) == 1 and "tanh" in str(fused[0].op)  # tanh and the masking in one kernel
    np.testing.assert_allclose(f(xv), dropout_of_tanh(None)(xv))  # same seed: the same mask


def test_useless_sum_to_shape_disappears(xs):
    x, y, xv, yv = xs
    g = T.tanh(x)
    out = S.SumToShape()(g, S.shape_i(x, 0), S.shape_i(x, 1))
    check([x], out, T.tanh(x), [xv], "local_useless_sum_to_shape")
    # a target that may be 1 where g is not is kept
    v = T.dmatrix("v")
    keep = S.SumToShape()(g, S.shape_i(v, 0), S.shape_i(v, 1))
    fg, log = rewritten([x, v], [keep])
    assert "local_useless_sum_to_shape" not in log.counts()


def test_gradient_sum_to_shape_disappears_in_gradients(xs):
    x, y, xv, yv = xs
    cost = T.sum(T.tanh(x) * T.exp(x))
    g = mg.grad(cost, x)
    assert "sum_to_shape" in listing(g)
    fg, log = rewritten([x], [g])
    assert not any(isinstance(n.op, S.SumToShape) for n in fg.toposort())
    np.testing.assert_allclose(evaluate(fg, [xv])[0], (1 - np.tanh(xv) ** 2) * np.exp(xv) + np.tanh(xv) * np.exp(xv))
    # with y's shape unrelated to x's, y may broadcast x: the run-time sum stays
    fg, log = rewritten([x, y], [mg.grad(T.sum(T.tanh(x) * y), x)])
    assert any(isinstance(n.op, S.SumToShape) for n in fg.toposort())


def test_lengths_tied_by_a_matrix_product_to_a_broadcast_settle():
    """dot(A.T, B * c) ties A's rows to the broadcast of A's and B's: a found bug rewrote
    shape_i(A, 0) into a switch over shape_i(A, 0) itself, again at every round (923 firings,
    a 60-deep switch).  The pipeline must settle after a few firings, at its fixed point."""
    A, B = T.dmatrix("A"), T.dmatrix("B")
    c = A / (T.sqr(B) + 1.0)
    f = mg.function([A, B], [T.dot(A.T, B * c), mg.grad(T.sum(c[1:]), A)], mode="python")
    assert len(f.rewrite_log) < 60, f.rewrite_log.summary()
    assert len(rewrite_graph(f.fgraph, "fast_run")) == 0
    rng = np.random.default_rng(0)
    av, bv = rng.standard_normal((3, 2)), rng.standard_normal((3, 2))
    got = f(av, bv)
    np.testing.assert_allclose(got[0], av.T @ (bv * av / (bv ** 2 + 1)))
    want = np.zeros((3, 2))
    want[1:] = 1 / (bv[1:] ** 2 + 1)
    np.testing.assert_allclose(got[1], want)


def test_a_length_tie_found_while_rewriting_is_used_in_the_same_run():
    """The fused cross-entropy reveals that a product's lengths agree only after a rewrite;
    a found bug left the run-time sum_to_shape this makes useless for a second run."""
    A, B = T.dmatrix("A"), T.dmatrix("B")
    labels = T.lvector("labels")
    nll = -T.log(T.nnet.softmax(A))[T.arange(labels.shape[0]), labels % 2]
    k = T.dot(B.T, nll)
    f = mg.function([A, B, labels], [k, mg.grad(T.sum(k), A)], mode="python")
    assert not any(isinstance(n.op, S.SumToShape) for n in f.fgraph.toposort())
    assert len(rewrite_graph(f.fgraph, "fast_run")) == 0


def test_sum_over_broadcast_axis_is_a_multiplication():
    v = T.dvector("v")
    n = T.lscalar("n")
    out = T.sum(T.alloc(v, n, S.shape_i(v, 0)), axis=0)
    expected = v * T.cast(n, "float64")
    check([v, n], out, expected, [np.arange(4.0), np.asarray(5)], "local_sum_of_broadcast")


def test_dimshuffle_and_reshape_chains_collapse(xs):
    x, y, xv, yv = xs
    out = x.dimshuffle(1, 0).dimshuffle("x", 1, 0)
    check([x], out, x.dimshuffle("x", 0, 1), [xv], "local_dimshuffle_chain")
    check([x], x.T.T, x, [xv], "local_dimshuffle_chain")
    r = T.reshape(T.reshape(x, (4, 3)), (2, 6))
    check([x], r, T.reshape(x, (2, 6)), [xv], "local_reshape_chain")


def test_alloc_broadcast_by_another_operand_is_dropped(xs):
    x, y, xv, yv = xs
    c = T.dscalar("c")
    out = x * T.alloc(c, S.shape_i(x, 0), S.shape_i(x, 1))
    check([x, c], out, x * c, [xv, np.asarray(2.5)], "local_alloc_in_elemwise")


# --- stabilization -----------------------------------------------------------------------------

def test_log_softmax(xs):
    x, y, xv, yv = xs
    check([x], T.log(T.nnet.softmax(x)), T.nnet.log_softmax(x), [xv], "local_log_softmax")


def test_nll_of_softmax_becomes_fused_cross_entropy(xs):
    x, y, xv, yv = xs
    labels = T.ivector("labels")
    lv = np.array([0, 3, 1], dtype="int32")
    nll = -T.log(T.nnet.softmax(x))[T.arange(x.shape[0]), labels]
    check([x, labels], nll, SoftmaxCrossEntropy()(x, labels), [xv, lv], "local_softmax_nll")
    # the categorical_crossentropy spelling gets there too
    cce = T.nnet.categorical_crossentropy(T.nnet.softmax(x), labels)
    check([x, labels], cce, SoftmaxCrossEntropy()(x, labels), [xv, lv], "local_softmax_nll")


def test_log_sigmoid_and_softplus(xs):
    x, y, xv, yv = xs
    check([x], T.log(T.sigmoid(x)), -T.softplus(-x), [xv], "local_log_sigmoid")
    check([x], T.log(1.0 - T.sigmoid(x)), -T.softplus(x), [xv], "local_log_sigmoid")
    check([x], T.log1p(T.exp(x)), T.softplus(x), [xv], "local_softplus")
    check([x], T.log(1.0 + T.exp(x)), T.softplus(x), [xv], "local_softplus")


def _finite_on_large_logits(cost, inputs, values, wrt):
    grads = [mg.grad(cost, wrt)]
    naive = mg.function(inputs, [cost] + grads, mode="python", rewrites=None)
    with np.errstate(all="ignore"):
        raw = naive(*values)
    stable = mg.function(inputs, [cost] + grads, mode="python")(*values)
    return raw, stable


@pytest.mark.parametrize("spelling", ["index", "crossentropy", "mean_of_log"])
def test_stabilized_softmax_nll_is_finite_for_large_logits(spelling):
    x = T.dmatrix("x")
    labels = T.ivector("labels")
    p = T.nnet.softmax(x)
    if spelling == "index":
        cost = -T.mean(T.log(p)[T.arange(labels.shape[0]), labels])
    elif spelling == "crossentropy":
        cost = T.mean(T.nnet.categorical_crossentropy(p, labels))
    else:
        cost = -T.sum(T.log(p)[T.arange(x.shape[0]), labels]) / 3.0
    xv = np.array([[1000.0, 0.0, -1000.0], [0.0, 1000.0, 0.0], [-1000.0, 0.0, 1000.0]])
    lv = np.array([2, 1, 0], dtype="int32")
    raw, (c, g) = _finite_on_large_logits(cost, [x, labels], [xv, lv], x)
    assert not np.all(np.isfinite(raw[0])) or not np.all(np.isfinite(raw[1]))  # the naive graph overflows
    expected_nll = np.array([2000.0, 0.0, 2000.0])
    np.testing.assert_allclose(c, expected_nll.mean())
    sm = np.exp(xv - xv.max(1, keepdims=True))
    sm /= sm.sum(1, keepdims=True)
    onehot = np.eye(3)[lv]
    np.testing.assert_allclose(g, (sm - onehot) / 3.0, atol=1e-12)


def test_stabilized_log_sigmoid_is_finite_for_large_inputs():
    x = T.dvector("x")
    cost = T.sum(T.log(T.sigmoid(x)))
    xv = np.array([-1000.0, 0.0, 1000.0])
    raw, (c, g) = _finite_on_large_logits(cost, [x], [xv], x)
    assert not np.isfinite(raw[0])
    np.testing.assert_allclose(c, -1000.0 - np.log(2.0))
    np.testing.assert_allclose(g, np.exp(-np.logaddexp(0.0, xv)))  # 1 / (1 + exp(x)) without overflow


def test_softmax_cross_entropy_gradient():
    labels = np.array([0, 2, 1, 2], dtype="int32")
    mg.verify_grad(lambda a: T.sum(SoftmaxCrossEntropy()(a, T.constant(labels)) * np.arange(1.0, 5.0)),
                   [np.random.default_rng(0).standard_normal((4, 3))])


def test_softmax_cross_entropy_errors():
    x = T.dmatrix("x")
    with pytest.raises(TypeError, match="softmax_cross_entropy"):
        SoftmaxCrossEntropy()(x, T.dvector("y"))
    f = mg.function([x, y := T.ivector("y")], SoftmaxCrossEntropy()(x, y), mode="python")
    with pytest.raises(IndexError, match="labels"):
        f(np.zeros((2, 3)), np.array([0, 3], dtype="int32"))


# --- fusion ------------------------------------------------------------------------------------

def _ops(fg):
    return [n.op for n in fg.toposort()]


def test_elementwise_region_becomes_one_composite(xs):
    x, y, xv, yv = xs
    out = T.tanh(x * y + 1.0) - x
    fg, log = rewritten([x, y], [out], rules=(), passes=[fuse_elemwise])
    ops = _ops(fg)
    assert len(ops) == 1 and isinstance(ops[0].scalar_op, E.Composite)
    assert ops[0].scalar_op.formulas() == ["sub(tanh(add(mul(i0, i1), i2)), i0)"]
    np.testing.assert_allclose(evaluate(fg, [xv, yv])[0], np.tanh(xv * yv + 1) - xv)
    assert log.counts() == {"elemwise_fusion": 1}


def test_fusion_multiple_outputs_and_broadcast_inputs(xs):
    x, y, xv, yv = xs
    b = T.dvector("b")
    h = T.exp(x + b)            # used twice: by the region and by a dot product
    out = T.sqrt(h) * 2.0
    other = T.dot(h, y.T)
    fg, log = rewritten([x, y, b], [out, other], rules=(), passes=[fuse_elemwise])
    fused = [n for n in fg.toposort() if isinstance(n.op, E.Elemwise)]
    assert len(fused) == 1 and len(fused[0].outputs) == 2
    assert fused[0].op.scalar_op.formulas() == ["exp(add(i0, i1))", "mul(sqrt(exp(add(i0, i1))), i2)"]
    bv = np.arange(4.0)
    o1, o2 = evaluate(fg, [xv, yv, bv])
    np.testing.assert_allclose(o1, np.sqrt(np.exp(xv + bv)) * 2)
    np.testing.assert_allclose(o2, np.exp(xv + bv) @ yv.T)


def test_fusion_does_not_pull_statistics_into_the_big_region(xs):
    x, y, xv, yv = xs
    m = T.mean(x, axis=0, keepdims=True)
    s = T.sqrt(T.var(x, axis=0, keepdims=True) + 1e-5)
    out = (x - m) / s
    fg, log = rewritten([x], [out])
    fuse_reductions(fg, log)
    fuse_elemwise(fg, log)
    big = [n for n in fg.toposort() if isinstance(n.op, E.Elemwise) and n.outputs[0].ndim == 2
           and n.outputs[0].type.shape[0] != 1]
    assert len(big) == 1  # (x - m) / s: one kernel over the batch; sqrt(var + eps) stays outside
    np.testing.assert_allclose(evaluate(fg, [xv])[0], (xv - xv.mean(0)) / np.sqrt(xv.var(0) + 1e-5))


def test_reduction_absorbs_its_producer_without_a_temporary(xs):
    x, y, xv, yv = xs
    m = T.mean(x, axis=0, keepdims=True)
    centered = x - m
    ssd = T.sum(T.sqr(centered), axis=0)
    out = centered * 2.0            # the centered values are also needed elsewhere
    fg, log = rewritten([x], [ssd, out], rules=(), passes=[fuse_reductions])
    fr = [n for n in fg.toposort() if isinstance(n.op, M.FusedReduce)]
    assert len(fr) == 1 and fr[0].op.kinds == ("add",)
    assert fr[0].op.scalar_op.formulas() == ["sqr(sub(i0, i1))"]
    assert fr[0].inputs[0] is fg.inputs[0]  # reads x itself, not x - mean
    a, b = evaluate(fg, [xv])
    np.testing.assert_allclose(a, ((xv - xv.mean(0)) ** 2).sum(0))
    np.testing.assert_allclose(b, (xv - xv.mean(0)) * 2)


def test_reductions_of_shared_inputs_are_grouped(xs):
    x, y, xv, yv = xs
    dy, xhat = x, T.tanh(x)
    s1 = T.sum(dy * 3.0, axis=0)
    s2 = T.sum(dy * xhat, axis=0)
    s3 = T.max(xhat, axis=1)        # other axis: its own node
    fg, log = rewritten([x], [s1, s2, s3], rules=(), passes=[fuse_reductions])
    fr = [n for n in fg.toposort() if isinstance(n.op, M.FusedReduce)]
    assert [len(n.outputs) for n in fr] == [2] and fr[0].op.kinds == ("add", "add")
    a, b, c = evaluate(fg, [xv])
    np.testing.assert_allclose(a, (xv * 3).sum(0))
    np.testing.assert_allclose(b, (xv * np.tanh(xv)).sum(0))
    np.testing.assert_allclose(c, np.tanh(xv).max(1))
    # an unrelated y might broadcast x: summing both in one pass could be wrong, so not grouped
    fg, log = rewritten([x, y], [s1, T.sum(x * y, axis=0)], rules=(), passes=[fuse_reductions])
    assert sum(isinstance(n.op, M.FusedReduce) for n in fg.toposort()) == 2


def test_dependent_reductions_are_not_grouped(xs):
    x, y, xv, yv = xs
    s1 = T.sum(x * 2.0, axis=0)
    s2 = T.sum(x * s1, axis=0)      # needs s1 first
    fg, log = rewritten([x], [s2], rules=(), passes=[fuse_reductions])
    assert sum(isinstance(n.op, M.FusedReduce) for n in fg.toposort()) == 2
    np.testing.assert_allclose(evaluate(fg, [xv])[0], (xv * (xv * 2).sum(0)).sum(0))


def test_fusion_never_makes_a_cycle(xs):
    x, y, xv, yv = xs
    a = T.exp(x)
    d = T.dot(a, y.T)               # leaves the elementwise world and comes back
    out = T.tanh(a) + T.dot(d, y)
    fg, log = rewritten([x, y], [out], rules=(), passes=[fuse_elemwise])
    fg.toposort()
    ev = np.exp(xv)
    np.testing.assert_allclose(evaluate(fg, [xv, yv])[0], np.tanh(ev) + (ev @ yv.T) @ yv)


# --- in place --------------------------------------------------------------------------------

def test_inplace_marks_dead_intermediates_only(xs):
    x, y, xv, yv = xs
    t = T.dot(x, y.T)
    out = T.tanh(t)                 # t is dead after this: may be overwritten
    keep = T.exp(x)                 # x is a graph input: never overwritten
    fg, log = rewritten([x, y], [out, keep], rules=(), passes=[inplace])
    ops = {str(n.op): n.op for n in fg.toposort()}
    assert ops["tanh{inplace}"].inplace == ((0, 0),)
    assert ops["exp"].inplace == ()
    # a value with another client is not overwritten
    fg, log = rewritten([x, y], [T.tanh(t), t * 2.0], rules=(), passes=[inplace])
    assert all(not getattr(n.op, "inplace", ()) or n.inputs[n.op.inplace[0][1]].owner.op != M.Dot()
               for n in fg.toposort())


def test_inplace_never_writes_into_a_view(xs):
    x, y, xv, yv = xs
    t = T.dot(x, y.T)
    out = T.tanh(t.T)               # t.T is a view of t
    fg, log = rewritten([x, y], [out], rules=(), passes=[inplace])
    assert "inplace_elemwise" not in log.counts()


def test_shared_updates_are_written_in_place():
    W = mg.shared(np.ones((3, 2)), name="W")
    b = mg.shared(np.zeros(2), name="b")
    x = T.dmatrix("x")
    cost = T.sum(T.tanh(T.dot(x, W) + b))
    gW, gb = mg.grad(cost, [W, b])
    f = mg.function([x], cost, updates=[(W, W - 0.1 * gW), (b, b - 0.1 * gb)], mode="python")
    assert sorted(f.fgraph.inplace_updates) == [(1, 1), (2, 2)]
    for out_i, in_i in f.fgraph.inplace_updates:
        node = f.fgraph.outputs[out_i].owner
        assert [node.inputs[i] for _, i in node.op.inplace] == [f.fgraph.inputs[in_i]]
    xv = np.arange(6.0).reshape(2, 3) / 6
    f(xv)
    h = np.tanh(xv @ np.ones((3, 2)))
    np.testing.assert_allclose(W.get_value(), np.ones((3, 2)) - 0.1 * xv.T @ (1 - h ** 2))


def test_shared_update_in_place_runs_after_its_other_readers(mode):
    W = mg.shared(np.ones((2, 2)), name="W")
    V = mg.shared(np.zeros(()), name="V")
    x = T.dmatrix("x")
    read = T.dot(x, W)              # reads W, not an ancestor of W's update
    # V's update comes after W's among the outputs, so without the order constraint the
    # product would read the doubled W
    f = mg.function([x], [], updates=[(W, W * 2.0), (V, V + T.sum(read))], mode=mode)
    fg = f.fgraph
    assert "W" in [fg.inputs[i].name for _, i in fg.inplace_updates]
    order = fg.toposort()
    dot = next(n for n in order if isinstance(n.op, M.Dot))
    assert order.index(dot) < order.index(fg.outputs[0].owner)
    xv = np.arange(4.0).reshape(2, 2)
    f(xv)
    f(xv)
    np.testing.assert_allclose(W.get_value(), np.full((2, 2), 4.0))
    np.testing.assert_allclose(V.get_value(), np.sum(xv @ np.ones((2, 2))) * 3)


def test_shared_update_not_in_place_while_another_reader_may_follow():
    W = mg.shared(np.ones((2, 2)), name="W")
    x = T.dmatrix("x")
    new = W * 2.0
    # another reader of W is not an ancestor, and the new value is read too: it cannot run last
    f = mg.function([x], [T.dot(x, W), T.dot(x, new)], updates=[(W, new)], mode="python")
    assert f.fgraph.inplace_updates == ()
    f2 = mg.function([x], W + 0.0, updates=[(W, W * 2.0)], mode="python", on_unused_input="ignore")
    assert f2.fgraph.inplace_updates == ()  # W itself is returned


def test_shared_update_never_reads_itself_through_a_view(mode):
    w0 = np.arange(16.0).reshape(4, 4)
    W = mg.shared(w0.copy(), name="W")
    mg.function([], [], updates=[(W, W - 0.5 * W.T)], mode=mode)()
    np.testing.assert_allclose(W.get_value(), w0 - 0.5 * w0.T)


# --- pipelines, log ------------------------------------------------------------------------

def _mlp_graph():
    rng = np.random.default_rng(0)
    x = T.matrix("x")
    labels = T.ivector("labels")
    W = mg.shared(rng.standard_normal((5, 4)).astype("float32"), name="W")
    V = mg.shared(rng.standard_normal((4, 3)).astype("float32"), name="V")
    h = T.tanh(T.dot(x, W))
    p = T.nnet.softmax(T.dot(h, V))
    cost = -T.mean(T.log(p)[T.arange(labels.shape[0]), labels])
    gW, gV = mg.grad(cost, [W, V])
    return [x, labels], cost, [(W, W - 0.1 * gW), (V, V - 0.1 * gV)]


@pytest.mark.parametrize("pipeline", ["fast_run", "fast_compile"])
def test_pipelines_are_idempotent(pipeline):
    inputs, cost, updates = _mlp_graph()
    f = mg.function(inputs, cost, updates=updates, mode="python", rewrites=pipeline)
    before = listing(f.fgraph.outputs)
    log = rewrite_graph(f.fgraph, pipeline)
    assert len(log) == 0, str(log)
    assert listing(f.fgraph.outputs) == before


def test_incremental_clients_match_a_rebuild():
    inputs, cost, updates = _mlp_graph()
    f = mg.function(inputs, cost, updates=updates, mode="python")
    fg = f.fgraph
    incremental = {v: sorted((id(c), i) for c, i in cl) for v, cl in fg.clients.items() if cl}
    nodes = set(fg.nodes)
    fg.rebuild_clients()
    rebuilt = {v: sorted((id(c), i) for c, i in cl) for v, cl in fg.clients.items() if cl}
    assert incremental == rebuilt and nodes == set(fg.nodes)


def test_rewrite_log_and_summary():
    inputs, cost, updates = _mlp_graph()
    f = mg.function(inputs, cost, updates=updates, mode="python")
    log = f.rewrite_log
    counts = log.counts()
    for rule in ("merge", "local_log_softmax", "local_softmax_nll", "elemwise_fusion", "inplace_update"):
        assert rule in counts, counts
    assert log.nodes_after < log.nodes_before
    text = log.summary()
    assert f"{log.nodes_before} nodes -> {log.nodes_after} nodes" in text and "elemwise_fusion" in text
    entry = next(e for e in log if e.rule == "local_log_softmax")
    assert entry.replaced[0].startswith("log(") and entry.replacement[0].startswith("log_softmax(")
    assert type(entry.old[0].owner.op.scalar_op).__name__ == "Log" and type(entry.new[0].owner.op).__name__ == "LogSoftmax"
    assert mg.function(inputs, cost, mode="python", rewrites=None).rewrite_log.entries == []
    with pytest.raises(ValueError, match="rewrites"):
        mg.function(inputs, cost, mode="python", rewrites="fastest")


@pytest.mark.parametrize("pipeline", [None, "fast_compile", "fast_run"])
def test_pipelines_give_the_same_training_step(pipeline):
    inputs, cost, updates = _mlp_graph()
    rng = np.random.default_rng(1)
    xv = rng.standard_normal((6, 5)).astype("float32")
    lv = rng.integers(0, 3, 6).astype("int32")
    ref = mg.function(inputs, [cost] + [u for _, u in updates], mode="python", rewrites=None)(xv, lv)
    got = mg.function(inputs, [cost] + [u for _, u in updates], mode="python", rewrites=pipeline)(xv, lv)
    for a, b in zip(ref, got):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


# --- composite ops -------------------------------------------------------------------------

def test_composite_ops_are_inlined_and_their_statistics_merged():
    from minigraph.graph.opfromgraph import OpFromGraph
    from minigraph.rewriting.inline import inline_composites

    a, b = T.dvector("a"), T.dvector("b")
    axpy = OpFromGraph([a, b], [T.exp(a) * 2.0 + b], name="axpy")
    u, v = T.dvector("u"), T.dvector("v")
    out = axpy(u, v)
    g = mg.grad(T.sum(out), u)      # derived from the inner graph: exp(u) appears again
    fg, log = rewritten([u, v], [out, g], rules=(), passes=[inline_composites, merge])
    assert log.counts()["inline_composite"] == 1
    assert not any(isinstance(n.op, OpFromGraph) for n in fg.toposort())
    assert sum(isinstance(getattr(n.op, "scalar_op", None), E.Exp) for n in fg.toposort()) == 1
    uv, vv = np.arange(3.0), np.ones(3)
    o, gu = evaluate(fg, [uv, vv])
    np.testing.assert_allclose(o, np.exp(uv) * 2 + vv)
    np.testing.assert_allclose(gu, np.exp(uv) * 2)


def test_batch_norm_op_is_inlined_with_mean_and_variance_once():
    x = T.dmatrix("x")
    gamma, beta = T.dvector("gamma"), T.dvector("beta")
    out, mean, invstd = T.nnet.bn.batch_normalization_train(x, gamma, beta)
    cost = T.sum(T.tanh(out))
    grads = mg.grad(cost, [x, gamma, beta])
    f = mg.function([x, gamma, beta], [cost] + grads, mode="python")
    assert "inline_composite" in f.rewrite_log.counts()
    reductions = [n for n in f.fgraph.toposort() if isinstance(n.op, (M.Sum, M.FusedReduce)) and n.inputs[0] is x]
    formulas = [n.op.scalar_op.formulas() if isinstance(n.op, M.FusedReduce) else ["i0"] for n in reductions]
    assert sum(fs == ["i0"] for fs in formulas) == 1                    # sum(x): the mean
    assert sum("sqr(sub(i0, i1))" in fs for fs in formulas) == 1         # sum((x - mean)^2): the variance
    rng = np.random.default_rng(0)
    values = [rng.standard_normal((5, 3)), rng.standard_normal(3), rng.standard_normal(3)]
    ref = mg.function([x, gamma, beta], [cost] + grads, mode="python", rewrites=None)(*values)
    for a, b in zip(ref, f(*values)):
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12)


def test_useless_cast_and_identity_disappear(xs):
    x, y, xv, yv = xs
    check([x], E.Elemwise(E.Identity())(x) * 2.0, x * 2.0, [xv], "local_useless_elemwise_cast")


def test_a_failing_rule_is_logged_and_skipped(xs):
    from minigraph.rewriting.framework import local_rule

    @local_rule("broken_rule", E.Tanh)
    def broken(fgraph, node):
        raise RuntimeError("bug in a rule")

    x, y, xv, yv = xs
    fg = FunctionGraph([x], [T.tanh(x) * 1.0])
    log = RewriteLog()
    with pytest.warns(RuntimeWarning, match="broken_rule"):
        LocalPass("test", [broken] + LOCAL).run(fg, log)
    assert log.failures[0][0] == "broken_rule" and "bug in a rule" in log.failures[0][2]
    assert "local_neutral_element" in log.counts()  # the other rules still ran
    np.testing.assert_allclose(evaluate(fg, [xv])[0], np.tanh(xv))
