"""The compiled driver: once a function is hot, a call on small inputs runs its whole driver as
one numba function.  Checked against the reference interpreter on the same graphs, with its
tiering, its size limit, its buffers and what keeps a function on the Python driver."""
import warnings
import weakref

import numpy as np
import pytest

import minigraph as mg
import minigraph.tensor as T

pytest.importorskip("numba")

from minigraph.backends.numba import linker  # noqa: E402


@pytest.fixture
def compiled_now(monkeypatch):
    """Functions built in the test compile their driver at their first call."""
    monkeypatch.setenv("MINIGRAPH_COMPILED_DRIVER", "0")


def bn_step():
    """Batch norm forward and backward (every length but the batch's known), as in a model."""
    x = T.tensor("float32", shape=(None, 5), name="x")
    dy = T.tensor("float32", shape=(None, 5), name="dy")
    gamma = T.tensor("float32", shape=(1, 5), name="gamma")
    beta = T.tensor("float32", shape=(1, 5), name="beta")
    out, mean, invstd = T.nnet.bn.batch_normalization_train(x, gamma, beta, axes="per-activation", epsilon=1e-4)
    grads = mg.grad(None, [x, gamma, beta], known_grads={out: dy})
    return [x, gamma, beta, dy], [out, mean, invstd, *grads]


def values(rng, batch):
    return [rng.standard_normal((batch, 5)).astype("float32"), (1 + 0.1 * rng.standard_normal((1, 5))).astype("float32"),
            rng.standard_normal((1, 5)).astype("float32"), rng.standard_normal((batch, 5)).astype("float32")]


def assert_close(got, want):
    for a, b in zip(got, want):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6)


def test_batch_norm_step_matches_the_reference(compiled_now, rng):
    inputs, outputs = bn_step()
    f = mg.function(inputs, outputs, mode="numba")
    g = mg.function(inputs, outputs, mode="python")
    for batch in (7, 9, 7):  # a new batch size reallocates the buffers it must
        args = values(rng, batch)
        assert_close(f(*args), g(*args))
    assert f._thunk._jit is not None
    assert "# compiled driver" in f.source() and "def driver(x, gamma, beta, dy, _b, _c, _z, _st):" in f.source()


def test_the_driver_compiles_once_the_function_is_hot(monkeypatch, rng):
    monkeypatch.delenv("MINIGRAPH_COMPILED_DRIVER", raising=False)
    monkeypatch.setattr(linker, "COMPILED_DRIVER_CALLS", 3)
    x = T.matrix("x")
    f = mg.function([x], (T.exp(x) * 2).sum(axis=0), mode="numba")
    v = rng.standard_normal((4, 3)).astype("float32")
    for _ in range(3):
        f(v)
    assert f._thunk._jit is None
    np.testing.assert_allclose(f(v), (np.exp(v) * 2).sum(axis=0), rtol=1e-5)
    assert f._thunk._jit is not None

    monkeypatch.setenv("MINIGRAPH_COMPILED_DRIVER", "off")
    g = mg.function([x], T.exp(x) * 3, mode="numba")
    for _ in range(5):
        g(v)
    assert g._thunk._jit is None
    monkeypatch.setenv("MINIGRAPH_COMPILED_DRIVER", "soon")
    with pytest.raises(ValueError, match="MINIGRAPH_COMPILED_DRIVER"):
        mg.function([x], T.exp(x) * 4, mode="numba")


def test_only_small_calls_count_towards_compiling(monkeypatch, rng):
    monkeypatch.setenv("MINIGRAPH_COMPILED_DRIVER", "1")
    monkeypatch.setattr(linker, "COMPILED_DRIVER_MAX_SIZE", 20)
    x = T.matrix("x")
    f = mg.function([x], T.tanh(x) + 1, mode="numba")
    large, small = rng.standard_normal((6, 5)).astype("float32"), rng.standard_normal((2, 5)).astype("float32")
    for _ in range(3):
        f(large)
    f(small)
    assert f._thunk._jit is None  # the large calls would never have used it
    np.testing.assert_allclose(f(small), np.tanh(small) + 1, rtol=1e-6)
    assert f._thunk._jit is not None


def test_large_calls_run_the_python_driver(compiled_now, monkeypatch, rng):
    monkeypatch.setattr(linker, "COMPILED_DRIVER_MAX_SIZE", 20)
    x = T.matrix("x")
    f = mg.function([x], T.tanh(x).sum(axis=1), mode="numba")
    thunk = f._thunk
    python_calls = []
    run = thunk._run
    thunk._run = lambda inputs: python_calls.append(1) or run(inputs)
    small, large = rng.standard_normal((4, 5)).astype("float32"), rng.standard_normal((6, 5)).astype("float32")
    np.testing.assert_allclose(f(small), np.tanh(small).sum(axis=1), rtol=1e-5)
    assert thunk._jit is not None and not python_calls
    np.testing.assert_allclose(f(large), np.tanh(large).sum(axis=1), rtol=1e-5)
    assert python_calls == [1]


def test_buffers_are_reused_and_results_are_never_overwritten(compiled_now, rng):
    x = T.matrix("x")
    h = T.exp(x).sum(axis=0)
    f = mg.function([x], [h * 2, T.tanh(x) - h], mode="numba")
    v1, v2 = rng.standard_normal((3, 4)).astype("float32"), rng.standard_normal((3, 4)).astype("float32")
    r1 = f(v1)
    kept = [a.copy() for a in r1]
    buffers = [b.ctypes.data for b in f._thunk._ns["_b"]]
    assert buffers
    r2 = f(v2)
    assert [b.ctypes.data for b in f._thunk._ns["_b"]] == buffers  # intermediates: the same memory
    for a, b in zip(r1, kept):
        np.testing.assert_array_equal(a, b)  # the first results, untouched by the second call
    assert all(not np.shares_memory(a, b) for a in r1 for b in r2)
    np.testing.assert_allclose(r2[0], np.exp(v2).sum(axis=0) * 2, rtol=1e-5)


def test_a_failing_call_names_the_node(compiled_now, rng):
    inputs, outputs = bn_step()
    f = mg.function(inputs, outputs, mode="numba")
    args = values(rng, 6)
    f(*args)
    assert f._thunk._jit is not None
    args[3] = args[3][:4]  # dy with fewer rows than x
    with pytest.raises(ValueError, match="specify_shape"):
        f(*args)


def test_what_keeps_the_python_driver(compiled_now):
    x, w = T.matrix("x"), T.matrix("w")
    product = mg.function([x, w], T.dot(x, w) + 1, mode="numba")
    assert product._thunk._jit_source is None and "dot" in product._thunk._jit_blocker
    assert "# compiled driver" not in product.source()

    # an update written in place runs compiled too; a call failing after it raises
    s = mg.shared(np.zeros((2, 3), "float32"), name="s")
    step = mg.function([x], [], updates=[(s, T.exp(s) * 0 + s + x)], mode="numba")
    step(np.ones((2, 3), "float32"))
    step(np.ones((2, 3), "float32"))
    assert step._thunk._jit is not None and "_st[0] = 1" in step._thunk._jit_source
    np.testing.assert_array_equal(s.get_value(), 2)

    profiled = mg.function([x], T.exp(x), mode="numba", profile=True)
    assert profiled._thunk._jit_source is None


def test_an_index_out_of_range_raises(compiled_now):
    x, k = T.vector("x"), T.lscalar("k")
    f = mg.function([x, k], x[k] * 2.0, mode="numba")
    v = np.arange(3, dtype="float32")
    assert f(v, 1) == 2.0 and f(v, -1) == 4.0 and f._thunk._jit is not None
    with pytest.raises(IndexError, match="out of bounds|out of range"):
        f(v, 3)


def test_a_driver_that_fails_to_compile_leaves_the_python_driver(compiled_now, monkeypatch, rng):
    from minigraph.backends.numba import cache

    build = cache.build

    def failing(source, *args, name="kernel", **kw):
        if name == "driver":
            raise RuntimeError("no compiler today")
        return build(source, *args, name=name, **kw)

    monkeypatch.setattr(cache, "build", failing)
    x = T.matrix("x")
    f = mg.function([x], T.exp(x).sum(axis=0), mode="numba")
    v = rng.standard_normal((3, 4)).astype("float32")
    with pytest.warns(UserWarning, match="compiled driver failed to build"):
        np.testing.assert_allclose(f(v), np.exp(v).sum(axis=0), rtol=1e-5)
    assert f._thunk._jit is None and "no compiler today" in f._thunk._jit_blocker
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second attempt
        np.testing.assert_allclose(f(v), np.exp(v).sum(axis=0), rtol=1e-5)


def test_results_let_go_of_are_reused(compiled_now, rng):
    x = T.matrix("x")
    f = mg.function([x], T.tanh(x) * 2, mode="numba")
    v = rng.standard_normal((3, 4)).astype("float32")
    first = f(v)
    was_first = weakref.ref(first)
    held = f(v)  # the first result is still held: a new array
    assert f._thunk._jit is not None and held is not first
    del first
    again = f(v)  # the first one let go of: the same array serves again
    assert again is was_first() and again is not held
    np.testing.assert_allclose(again, np.tanh(v) * 2, rtol=1e-6)
    np.testing.assert_allclose(held, np.tanh(v) * 2, rtol=1e-6)


@pytest.mark.parametrize("setting", ["off", "0"])
def test_views_returned_are_copied_by_the_driver(setting, monkeypatch, rng):
    """An output that is a view (of an intermediate, of an input) is copied by either driver into
    an array of its own, reused once let go of, so mg.function has nothing left to copy."""
    monkeypatch.setenv("MINIGRAPH_COMPILED_DRIVER", setting)
    x = T.matrix("x")
    s = T.exp(x).sum(axis=0)
    f = mg.function([x], [s.dimshuffle("x", 0), T.tanh(x) * s, x.T, x.T], mode="numba")
    assert f._thunk.fresh_outputs == [True, True, True, False]  # (the repeat: copied by mg.function)
    v1, v2 = (rng.standard_normal((3, 4)).astype("float32") for _ in range(2))
    r1 = f(v1)
    assert (f._thunk._jit is not None) == (setting == "0")
    kept = [a.copy() for a in r1]
    r2 = f(v2)
    for a, b in zip(r1, kept):
        np.testing.assert_array_equal(a, b)  # untouched by the second call
    assert not any(np.shares_memory(a, b) for a in r1 + r2 + [v1, v2] for b in r1 + r2 if a is not b)
    np.testing.assert_allclose(r2[0][0], np.exp(v2).sum(axis=0), rtol=1e-5)
    np.testing.assert_array_equal(r2[2], v2.T)
    views = [weakref.ref(r1[0]), weakref.ref(r2[0])]
    del r1, r2, a, b
    again = f(v1)[0]
    assert any(w() is again for w in views)  # let go of, kept by the driver: one serves again


def test_vector_updates_are_written_in_place(compiled_now):
    v = T.vector("v")
    s = mg.shared(np.zeros(3, "float32"), name="s")
    step = mg.function([v], [], updates=[(s, s - 0.5 * v)], mode="numba")
    before = s._value
    step(np.ones(3, "float32"))
    step(np.ones(3, "float32"))
    assert step._thunk._jit is not None and s._value is before  # the update wrote into its array
    np.testing.assert_array_equal(s.get_value(), -1.0)
