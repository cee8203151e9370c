"""gemm: the op, the rule that makes it from matrix updates (rewriting/blas.py), its in-place
form for shared-variable updates and the numba backend's call of numpy's BLAS (cblas.py)."""
import numpy as np
import pytest

import minigraph as mg
import minigraph.tensor as T
from minigraph.backends.numba import cblas
from minigraph.tensor.blas import Gemm, gemm
from test_grad import check_grad


def _ops(f):
    return [n.op for n in f.fgraph.toposort()]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sgd_update_becomes_an_in_place_gemm(mode, rng, dtype):
    w0 = rng.standard_normal((6, 5)).astype(dtype)
    W = mg.shared(w0.copy(), name="W")
    x, g = T.tensor(dtype, (None, 6), "x"), T.tensor(dtype, (None, 5), "g")
    lr = np.asarray(0.1, dtype)
    f = mg.function([x, g], [], updates=[(W, W - lr * T.dot(x.T, g))], mode=mode)
    assert _ops(f)[-1] == Gemm(inplace=((0, 0),))
    assert f.rewrite_log.counts()["local_gemm"] == 1
    xv, gv = rng.standard_normal((3, 6)).astype(dtype), rng.standard_normal((3, 5)).astype(dtype)
    f(xv, gv)
    f(xv, gv)
    assert W.get_value().dtype == dtype
    rtol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(W.get_value(), w0 - 2 * lr * (xv.T @ gv), rtol=rtol, atol=rtol)


@pytest.mark.parametrize("build, alpha", [
    (lambda z, x, y: z + T.dot(x, y), 1.0),
    (lambda z, x, y: T.dot(x, y) + z, 1.0),
    (lambda z, x, y: z - T.dot(x, y), -1.0),
    (lambda z, x, y: z + 2.0 * T.dot(x, y) * 3.0, 6.0),
])
def test_forms_of_a_matrix_update(mode, rng, build, alpha):
    # z's lengths must be known to equal the product's: here they are static
    z = T.tensor("float64", (4, 2), "z")
    x, y = T.tensor("float64", (4, None), "x"), T.tensor("float64", (None, 2), "y")
    zv, xv, yv = rng.standard_normal((4, 2)), rng.standard_normal((4, 3)), rng.standard_normal((3, 2))
    f = mg.function([z, x, y], build(z, x, y), mode=mode)
    node = f.fgraph.outputs[0].owner
    assert isinstance(node.op, Gemm) and not node.op.inplace  # z is the caller's array
    assert float(node.inputs[1].data) == alpha
    zcopy = zv.copy()
    np.testing.assert_allclose(f(zv, xv, yv), zv + alpha * xv @ yv, rtol=1e-12)
    np.testing.assert_array_equal(zv, zcopy)


def test_scale_known_only_at_run_time(mode, rng):
    W = mg.shared(np.ones((3, 2)), name="W")
    x, g, lr = T.tensor("float64", (None, 3), "x"), T.tensor("float64", (None, 2), "g"), T.dscalar("lr")
    f = mg.function([x, g, lr], [], updates=[(W, W - lr * T.dot(x.T, g))], mode=mode)
    assert any(isinstance(op, Gemm) for op in _ops(f))
    xv, gv = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    f(xv, gv, 0.25)
    np.testing.assert_allclose(W.get_value(), 1 - 0.25 * xv.T @ gv, rtol=1e-12)


def test_no_gemm_where_z_broadcasts_or_the_sum_is_read_further(rng):
    x, y = T.dmatrix("x"), T.dmatrix("y")
    row = T.tensor("float64", (1, None), "row")
    f = mg.function([row, x, y], row + T.dot(x, y), mode="python")
    assert not any(isinstance(op, Gemm) for op in _ops(f))  # gemm does not broadcast z
    z = T.dmatrix("z")
    f = mg.function([z, x, y], z + T.dot(x, y), mode="python")
    assert not any(isinstance(op, Gemm) for op in _ops(f))  # z may be (1, 1) at run time
    W = mg.shared(np.ones((3, 2)), name="W")
    f = mg.function([x, y], [], updates=[(W, W - T.dot(x.T, y))], mode="python")
    assert not any(isinstance(op, Gemm) for op in _ops(f))  # ...and so may the product
    x, y = T.tensor("float64", (3, None), "x"), T.tensor("float64", (None, 2), "y")
    z = T.tensor("float64", (3, 2), "z")
    f = mg.function([z, x, y], T.tanh(z + T.dot(x, y)), mode="python")
    assert not any(isinstance(op, Gemm) for op in _ops(f))  # the sum fuses into tanh's kernel
    f = mg.function([z, x, y], [z + T.dot(x, y), T.dot(x, y) * 2.0], mode="python")
    assert not any(isinstance(op, Gemm) for op in _ops(f))  # the product is used twice


def test_update_that_reads_itself_in_the_product(mode):
    w0 = np.arange(9.0).reshape(3, 3) / 9
    W = mg.shared(w0.copy(), name="W")
    f = mg.function([], [], updates=[(W, W - 0.5 * T.dot(W.T, W))], mode=mode)
    f()
    np.testing.assert_allclose(W.get_value(), w0 - 0.5 * w0.T @ w0, rtol=1e-12)


def test_without_numpys_blas_routine_the_backend_computes_it_itself(rng, monkeypatch):
    monkeypatch.setattr(cblas, "_routine", lambda dtype: None)
    W = mg.shared(np.ones((3, 2), "float32"), name="W")
    x, g = T.fmatrix("x"), T.fmatrix("g")
    f = mg.function([x, g], [], updates=[(W, W - np.float32(0.5) * T.dot(x.T, g))], mode="numba")
    xv, gv = rng.standard_normal((4, 3)).astype("float32"), rng.standard_normal((4, 2)).astype("float32")
    f(xv, gv)
    np.testing.assert_allclose(W.get_value(), 1 - 0.5 * xv.T @ gv, rtol=1e-6)


@pytest.mark.parametrize("layout", ["c", "transposed", "strided"])
def test_cblas_gemm_reads_each_layout(rng, layout):
    if not cblas.available("float64"):
        pytest.skip("numpy's BLAS is not scipy-openblas")
    a = rng.standard_normal((5, 3))
    b = rng.standard_normal((3, 4))
    if layout == "transposed":
        a, b = np.ascontiguousarray(a.T).T, np.ascontiguousarray(b.T).T
    elif layout == "strided":
        a, b = np.repeat(a, 2, axis=1)[:, ::2], np.repeat(b, 2, axis=0)[::2]
    c = rng.standard_normal((5, 4))
    expected = 0.5 * c - 2.0 * a @ b
    assert cblas.gemm(-2.0, a, b, 0.5, c)
    np.testing.assert_allclose(c, expected, rtol=1e-12)
    # what it leaves to the caller: a column-major c, a c that overlaps an operand, alpha 0
    assert not cblas.gemm(1.0, a, b, 1.0, np.zeros((4, 5)).T)
    sq = rng.standard_normal((3, 3))
    assert not cblas.gemm(1.0, sq, sq.T, 1.0, sq)
    assert not cblas.gemm(0.0, a, b, 1.0, c)


def test_gemm_checks_its_inputs_when_built_and_run():
    z, x, y, a = T.dmatrix("z"), T.dmatrix("x"), T.dmatrix("y"), T.dscalar("a")
    with pytest.raises(TypeError, match="gemm: takes matrices"):
        gemm(z, a, T.dvector("v"), y, a)
    with pytest.raises(TypeError, match="one float dtype"):
        gemm(z, a, T.fmatrix("xf"), y, a)
    with pytest.raises(ValueError, match="inner lengths differ"):
        gemm(z, a, T.tensor("float64", (2, 3)), T.tensor("float64", (4, 2)), a)
    with pytest.raises(ValueError, match="another shape"):
        gemm(T.tensor("float64", (5, 2)), a, T.tensor("float64", (2, 3)), T.tensor("float64", (3, 2)), a)
    f = mg.function([z, a, x, y], gemm(z, a, x, y, a), mode="python")
    with pytest.raises(ValueError, match=r"z of shape \(2, 2\) does not match the product of \(2, 3\) and \(3, 4"):
        f(np.ones((2, 2)), 1.0, np.ones((2, 3)), np.ones((3, 4)))


def test_gemm_gradient(mode, rng):
    points = [rng.standard_normal((3, 2)), np.asarray(0.7), rng.standard_normal((3, 4)),
              rng.standard_normal((4, 2)), np.asarray(-1.3)]
    check_grad(lambda z, a, x, y, b: gemm(z, a, x, y, b), points, mode)
