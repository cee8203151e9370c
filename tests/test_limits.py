"""Limits and errors at run time: buffers too large for memory raise MemoryError naming the
node and the buffer (never a crash); index arithmetic is exact past 2**31 elements per axis;
integer indices out of range raise IndexError on every backend."""
import warnings

import numpy as np
import pytest

import minigraph as mg
import minigraph.tensor as T

# a buffer of 10**7 x 10**7 float32 is 364 TiB; 2**40 x 2**40 does not even have a size in int64
HUGE = [10**7, 2**40]


@pytest.mark.parametrize("n", HUGE)
def test_alloc_too_large_is_a_memory_error_naming_the_buffer(mode, n):
    length = T.lscalar("n")
    out = T.alloc(np.float32(0), length, length)  # LIMITS-ALLOC
    f = mg.function([length], out, mode=mode)
    np.testing.assert_array_equal(f(3), np.zeros((3, 3), "float32"))
    with pytest.raises(MemoryError) as info:
        f(n)
    message = str(info.value)
    assert "the buffer: alloc.out: float32[?, ?]" in message  # the variable whose buffer did not fit
    if n < 2**31:
        assert f"shape ({n}, {n})" in message  # numpy says how large
    assert "LIMITS-ALLOC" in message  # the user's line


def test_broadcast_product_too_large_is_a_memory_error(mode):
    x, y = T.vector("x"), T.vector("y")
    out = T.tanh(x.dimshuffle(0, "x") * y.dimshuffle("x", 0))  # LIMITS-OUTER
    f = mg.function([x, y], out, mode=mode)
    big = np.broadcast_to(np.float32(1), (10**7,))  # a huge input that takes no memory
    with pytest.raises(MemoryError) as info:
        f(big, big)
    assert "(10000000, 10000000)" in str(info.value)
    assert "LIMITS-OUTER" in str(info.value)
    # the function still works afterwards
    np.testing.assert_allclose(f(np.ones(2, "float32"), np.ones(3, "float32")), np.tanh(np.ones((2, 3))), rtol=1e-6)


def test_memory_error_in_an_update_leaves_shared_variables_alone(mode):
    W = mg.shared(np.ones(3, "float32"), name="W")
    n = T.lscalar("n")
    big = T.alloc(np.float32(1), n, n)
    f = mg.function([n], big, updates=[(W, W * 2)], mode=mode)
    np.testing.assert_array_equal(f(2), np.ones((2, 2)))
    np.testing.assert_array_equal(W.get_value(), [2, 2, 2])
    with pytest.raises(MemoryError):
        f(10**7)
    np.testing.assert_array_equal(W.get_value(), [2, 2, 2])


def test_a_failed_call_changes_no_shared_variable(mode):
    """An update written in place (W + 1 into W's buffer) must not show when a later node of
    the same call fails: the call raises and every shared variable keeps its value."""
    W = mg.shared(np.zeros(3, "float32"), name="W")
    V = mg.shared(np.arange(3, dtype="float32"), name="V")
    i = T.lvector("i")
    f = mg.function([i], [], updates=[(W, W + 1.0), (V, V[i])], mode=mode)
    f(np.array([2, 1, 0]))
    with pytest.raises(IndexError):
        f(np.array([5, 1, 0]))
    np.testing.assert_array_equal(W.get_value(), [1, 1, 1])
    np.testing.assert_array_equal(V.get_value(), [2, 1, 0])


# --- index arithmetic past 2**31 ----------------------------------------------------------------

BIG = 2**31 + 16


@pytest.fixture
def huge_vector(tmp_path):
    """An int8 vector of 2**31 + 16 elements on a sparse memory-mapped file (no real memory)."""
    a = np.memmap(tmp_path / "huge.bin", dtype="int8", mode="w+", shape=(BIG,))
    a[[0, 5, 2**31 - 1, 2**31, 2**31 + 3, BIG - 1]] = [1, 2, 3, 4, 5, 6]
    yield a
    del a


def test_indices_past_2_31_in_one_axis(mode, huge_vector):
    x, i = T.bvector("x"), T.lvector("i")
    k = T.lscalar("k")
    f = mg.function([x, i, k], [x[i], x[k], x[2**31 + 3], x[-1], x[2**31 - 1:2**31 + 4].sum()], mode=mode)
    gathered, at_k, fixed, last, window = f(huge_vector, np.array([2**31, 5, -1, 2**31 + 3]), 2**31)
    np.testing.assert_array_equal(gathered, [4, 2, 6, 5])
    assert int(at_k) == 4 and int(fixed) == 5 and int(last) == 6
    assert int(window) == 3 + 4 + 5


def test_flat_offsets_past_2_31_in_two_axes(mode, tmp_path):
    """Each axis is short, but row * stride + col passes 2**31: offsets must be 64-bit."""
    rows, cols = 2**16 + 3, 2**15 + 5
    a = np.memmap(tmp_path / "huge2.bin", dtype="int8", mode="w+", shape=(rows, cols))
    a[rows - 1, cols - 1] = 7
    a[rows - 2, 3] = 9
    x = T.bmatrix("x")
    r, c = T.lvector("r"), T.lvector("c")
    f = mg.function([x, r, c], [x[r, c], x[-1].max(), x[rows - 2:, :4].sum(axis=0)], mode=mode)
    gathered, row_max, corner = f(a, np.array([rows - 1, rows - 2, 0]), np.array([cols - 1, 3, 0]))
    np.testing.assert_array_equal(gathered, [7, 9, 0])
    assert int(row_max) == 7
    np.testing.assert_array_equal(corner, [0, 0, 0, 9])


# --- out-of-range indices -----------------------------------------------------------------------

def _vector_cases():
    x = T.vector("x")
    i, k = T.lvector("i"), T.lscalar("k")
    return [
        ("advanced index", [x, i], x[i], [np.arange(3, dtype="float32"), np.array([0, 3])]),
        ("negative advanced index", [x, i], x[i], [np.arange(3, dtype="float32"), np.array([-4])]),
        ("scalar index", [x, k], x[k], [np.arange(3, dtype="float32"), 3]),
        ("negative scalar index", [x, k], x[k] * 2.0, [np.arange(3, dtype="float32"), -4]),
        ("gradient of an advanced index", [x, i], mg.grad(T.sum(x[i] ** 2), x),
         [np.arange(3, dtype="float32"), np.array([1, 7])]),
        ("set_subtensor", [x, i], T.set_subtensor(x[i], 0.0), [np.arange(3, dtype="float32"), np.array([5])]),
    ]


@pytest.mark.parametrize("case", range(len(_vector_cases())), ids=[c[0] for c in _vector_cases()])
def test_out_of_range_indices_raise_index_error(mode, case):
    what, inputs, out, values = _vector_cases()[case]
    f = mg.function(inputs, out, mode=mode)
    with pytest.raises(IndexError, match="out of bounds|out of range"):
        f(*values)


def test_out_of_range_labels_in_the_nll_cost(mode):
    """The cost of the README: labels past the number of classes raise IndexError, negative too."""
    x, y = T.matrix("x"), T.ivector("y")
    W = mg.shared(np.ones((4, 3), "float32"), name="W")
    p = T.nnet.softmax(T.dot(x, W))
    cost = -T.mean(T.log(p)[T.arange(y.shape[0]), y])
    train = mg.function([x, y], cost, updates=[(W, W - 0.1 * mg.grad(cost, W))], mode=mode)
    xs = np.ones((2, 4), "float32")
    train(xs, np.array([0, 2], "int32"))
    before = W.get_value()
    for labels in ([0, 3], [-4, 0]):
        with pytest.raises(IndexError):
            train(xs, np.array(labels, "int32"))
        np.testing.assert_array_equal(W.get_value(), before)  # no half-applied update


def test_crossentropy_with_out_of_range_labels(mode):
    x, y = T.matrix("x"), T.ivector("y")
    cost = T.nnet.categorical_crossentropy(T.nnet.softmax(x), y).mean()
    f = mg.function([x, y], [cost, mg.grad(cost, x)], mode=mode)
    xs = np.arange(6, dtype="float32").reshape(2, 3)
    f(xs, np.array([0, 2], "int32"))
    for labels in ([0, 3], [-4, 0]):
        with pytest.raises(IndexError):
            f(xs, np.array(labels, "int32"))


def test_negative_labels_mean_the_same_with_and_without_rewrites(mode):
    """The unrewritten graph indexes like numpy (-1: the last class); the fused cross-entropy
    the rewrites make of it must give the same values."""
    x, y = T.matrix("x"), T.ivector("y")
    cost = T.nnet.categorical_crossentropy(T.nnet.softmax(x), y).mean()
    xs = np.arange(6, dtype="float32").reshape(2, 3)
    labels = np.array([-1, -3], "int32")
    want = mg.function([x, y], [cost, mg.grad(cost, x)], mode="python", rewrites=None)(xs, labels)
    f = mg.function([x, y], [cost, mg.grad(cost, x)], mode=mode)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*compiled kernel failed")  # the kernel itself handles them
        got = f(xs, labels)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
