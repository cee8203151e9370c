"""Bad input: build-time errors name the op, shapes, dtypes and the user's line; run-time
errors name the op and the actual shapes; function and shared-variable checks."""
import inspect
import re

import numpy as np
import pytest

import minigraph as mg
import minigraph.tensor as T


def _here() -> int:
    """The caller's line number."""
    return inspect.currentframe().f_back.f_lineno


def _assert_user_line(message: str, line: int):
    assert f"test_errors.py\", line {line}" in message, message


# --- build time ---------------------------------------------------------------------------

def test_dot_of_mismatched_shared_matrices_fails_at_build_time():
    A = mg.shared(np.ones((2, 3)), name="A")
    B = mg.shared(np.ones((4, 3), dtype="float32"), name="B")
    with pytest.raises(ValueError) as info:
        line = _here() + 1
        T.dot(A, B)
    msg = str(info.value)
    assert "dot" in msg
    assert "float64[2, 3]" in msg and "float32[4, 3]" in msg
    assert "'A'" in msg and "'B'" in msg
    _assert_user_line(msg, line)
    assert "T.dot(A, B)" in msg  # the source line itself


@pytest.mark.parametrize("build,exc,words", [
    (lambda a, b: a + b, ValueError, ["add", "[2, 3]", "[4, 3]", "broadcast"]),
    (lambda a, b: a * b.T, ValueError, ["mul", "broadcast"]),
    (lambda a, b: T.concatenate([a, b], axis=1), ValueError, ["join", "[2, 3]", "[4, 3]", "axis 0"]),
    (lambda a, b: a.reshape((5,)), ValueError, ["reshape", "float64[2, 3]", "(5,)"]),
    (lambda a, b: a.reshape((4, -1)), ValueError, ["reshape", "float64[2, 3]"]),
    (lambda a, b: a[5], IndexError, ["subtensor", "out of bounds", "length 2"]),
    (lambda a, b: a[1, 2, 3], IndexError, ["too many indices"]),
    (lambda a, b: T.dot(T.dtensor3(), a), TypeError, ["dot", "float64[?, ?, ?]", "1 or 2 dimensions"]),
    (lambda a, b: a[T.dvector("idx")], TypeError, ["advanced_subtensor", "integers", "float64[?]"]),
    (lambda a, b: T.nnet.softmax(T.ivector("labels")), TypeError, ["softmax", "float", "int32[?]"]),
    (lambda a, b: T.alloc(a, 5, 3), ValueError, ["alloc", "float64[2, 3]", "length 5"]),
    (lambda a, b: a.dimshuffle(1), ValueError, ["dimshuffle", "axis 0"]),
    (lambda a, b: T.repeat(a, T.dscalar("r")), TypeError, ["repeat", "integer", "float64[]"]),
    (lambda a, b: T.clip(a, 0, 1, ) + b, ValueError, ["add", "broadcast"]),
    (lambda a, b: b[np.array([0, 1, 2]), np.array([0, 1])], ValueError, ["advanced_subtensor", "[3]", "[2]", "broadcast"]),
    (lambda a, b: a[::0], ValueError, ["subtensor", "step", "zero"]),
    (lambda a, b: a.reshape(T.dvector("shp", shape=(2,))), TypeError, ["reshape", "integer vector", "float64[2]"]),
    (lambda a, b: T.inc_subtensor(b[:, 1:], a), ValueError, ["inc_subtensor", "float64[2, 3]", "float64[4, 2]"]),
    (lambda a, b: T.set_subtensor(T.imatrix("counts")[0], a[0]), TypeError, ["set_subtensor", "float64", "int32"]),
    (lambda a, b: T.inc_subtensor(T.imatrix("counts")[np.array([0, 1])], a), TypeError, ["advanced_inc_subtensor", "int32"]),
])
def test_build_time_errors_name_op_shapes_dtypes_and_line(build, exc, words):
    a = mg.shared(np.ones((2, 3)), name="a")
    b = mg.shared(np.ones((4, 3)), name="b")
    with pytest.raises(exc) as info:
        build(a, b)
    msg = str(info.value)
    for w in words:
        assert w in msg, (w, msg)
    assert "test_errors.py" in msg, msg  # the user's file, not minigraph's


def test_error_points_at_the_users_line_not_minigraph():
    x = T.dmatrix("x")
    v = T.tensor("float64", (None, 5), "v")
    with pytest.raises(ValueError) as info:
        line = _here() + 1
        T.nnet.softmax(x) + T.sum(v, axis=0, keepdims=True).reshape((1, 5)) + T.ones((2, 4))
    _assert_user_line(str(info.value), line)
    assert "minigraph/tensor" not in str(info.value).split("built at:")[1]


def test_reduction_axis_errors():
    x = T.dmatrix("x")
    with pytest.raises(ValueError, match="axis 2 is out of range"):
        x.sum(axis=2)
    with pytest.raises(ValueError, match="repeated axis"):
        x.mean(axis=(0, -2))
    with pytest.raises(TypeError, match="axis"):
        x.max(axis=0.5)


def test_wrong_number_of_inputs_to_op():
    from minigraph.tensor.elemwise import Elemwise, Sub

    with pytest.raises(TypeError, match="expects 2 inputs"):
        Elemwise(Sub())(T.dvector(), T.dvector(), T.dvector())


def test_dtype_errors_at_build_time():
    with pytest.raises(TypeError, match="cannot differentiate"):
        mg.grad(T.sum(T.dvector("x")), T.ivector("i"))
    with pytest.raises(TypeError, match="boolean"):
        T.dot(T.dvector() > 0, T.dvector() > 0)


# --- run time -----------------------------------------------------------------------------

@pytest.mark.parametrize("build,values,words", [
    (lambda x, y: x + y, [(2, 3), (4, 3)], ["add", "(2, 3)", "(4, 3)"]),
    (lambda x, y: T.dot(x, y), [(2, 3), (4, 3)], ["dot", "(2, 3)", "(4, 3)"]),
    (lambda x, y: T.concatenate([x, y]), [(2, 3), (4, 2)], ["join", "(2, 3)", "(4, 2)"]),
    (lambda x, y: x.reshape((5, -1)) + y.sum(), [(2, 3), (1, 1)], ["reshape", "(2, 3)", "(5, -1)"]),
    (lambda x, y: x.dimshuffle(1, "x", 0) * y.dimshuffle(0, 1, "x"), [(2, 3), (4, 3)], ["mul", "(3, 1, 2)", "(4, 3, 1)"]),
])
def test_run_time_shape_errors(build, values, words, mode):
    x, y = T.dmatrix("x"), T.dmatrix("y")
    f = mg.function([x, y], build(x, y), mode=mode)
    with pytest.raises(ValueError) as info:
        f(*[np.ones(s) for s in values])
    msg = str(info.value)
    assert "shape" in msg, msg
    assert "test_errors.py" in msg, msg  # the line of the lambda that built the node
    for w in words:
        assert w in msg, (w, msg)


def test_run_time_error_names_the_users_line(mode):
    x, y = T.dmatrix("x"), T.dmatrix("y")
    line = _here() + 1
    z = T.dot(x, y)
    f = mg.function([x, y], z.sum(), mode=mode)
    with pytest.raises(ValueError) as info:
        f(np.ones((2, 3)), np.ones((2, 3)))
    _assert_user_line(str(info.value), line)


def test_run_time_error_shows_the_node_as_the_listing_prints_it(mode):
    x, y = T.dmatrix("x"), T.dmatrix("y")
    f = mg.function([x, y], T.dot(x, y), mode=mode)
    with pytest.raises(ValueError) as info:
        f(np.ones((2, 3)), np.ones((2, 3)))
    node_lines = [line for line in mg.printing.listing(f, print_kernels=False).splitlines() if "dot(" in line]
    assert len(node_lines) == 1
    assert f"while computing {node_lines[0]}" in str(info.value)


def test_run_time_index_errors(mode):
    x = T.dmatrix("x")
    i = T.lvector("i")
    f = mg.function([x, i], x[i], mode=mode)
    with pytest.raises(IndexError) as info:
        f(np.ones((2, 3)), np.array([0, 5]))
    assert "shape" in str(info.value) and "(2, 3)" in str(info.value)


def test_static_shape_mismatch_at_call_time(mode):
    x = T.tensor("float64", (None, 3), "x")
    f = mg.function([x], x * 2, mode=mode)
    with pytest.raises(ValueError, match=r"'x'.*shape \(2, 4\)"):
        f(np.ones((2, 4)))


# --- function input checks ----------------------------------------------------------------

def test_function_input_count():
    x, y = T.dvector("x"), T.dvector("y")
    f = mg.function([x, y], x + y, mode="python")  # input checks are the Function's, not a backend's
    with pytest.raises(TypeError, match="expected 2 inputs, got 1"):
        f(np.ones(2))
    with pytest.raises(TypeError, match="expected 2 inputs, got 3"):
        f(np.ones(2), np.ones(2), np.ones(2))


def test_function_input_ndim():
    x = T.fmatrix("x")
    f = mg.function([x], x * 2, mode="python")  # input checks are the Function's, not a backend's
    with pytest.raises(TypeError, match=r"'x'.*2 dimensions.*shape \(3,\)"):
        f(np.ones(3, dtype="float32"))


@pytest.mark.parametrize("value,ok", [
    (np.ones((2, 2)), True),                           # float64 holding exact float32 values
    (np.full((2, 2), 0.1), False),                     # 0.1 is not a float32
    (np.ones((2, 2), dtype="int64"), True),
    (np.full((2, 2), 2 ** 30 + 1, dtype="int64"), False),  # not exact in float32
    ([[1.5, 2.0], [3.0, 4.0]], True),
    (np.ones((2, 2), dtype="complex64"), False),
])
def test_function_input_dtype_conversion(value, ok):
    x = T.fmatrix("weights_in")
    f = mg.function([x], x * 2, mode="python")  # input checks are the Function's, not a backend's
    if ok:
        out = f(value)
        assert out.dtype == np.float32
        np.testing.assert_array_equal(out, np.asarray(value).astype("float32") * 2)
    else:
        with pytest.raises(TypeError, match="weights_in") as info:
            f(value)
        assert "float32" in str(info.value)


def test_python_float_takes_the_input_float_dtype(mode):
    """As in arithmetic, a Python float adopts the tensor's dtype; arrays must convert exactly."""
    lr = T.fscalar("lr")
    f = mg.function([lr], lr * 2, mode=mode)
    out = f(0.3)
    assert out.dtype == np.float32 and out == np.float32(0.3) * 2
    with pytest.raises(TypeError, match="'lr'"):
        f(np.float64(0.3))  # a numpy float64 is not converted with loss
    with pytest.raises(TypeError, match="'lr'"):
        f(np.array(0.3))


def test_integer_input_conversion():
    i = T.ivector("labels")
    f = mg.function([i], i + 1, mode="python")  # input checks are the Function's, not a backend's
    np.testing.assert_array_equal(f(np.array([1, 2], dtype="int64")), [2, 3])
    with pytest.raises(TypeError, match="labels"):
        f(np.array([2 ** 40], dtype="int64"))
    with pytest.raises(TypeError, match="labels"):
        f(np.array([1.5]))


def test_function_rejects_non_root_inputs():
    x = T.dvector("x")
    with pytest.raises(TypeError, match="input 0"):
        mg.function([x * 2], x)
    with pytest.raises(TypeError, match="shared"):
        mg.function([mg.shared(np.ones(2))], x, on_unused_input="ignore")


def test_missing_input():
    x, y = T.dvector("x"), T.dvector("y")
    with pytest.raises(mg.MissingInputError, match="'y'"):
        mg.function([x], x + y)


# --- shared variables ---------------------------------------------------------------------

def test_shared_set_value_other_shape_raises():
    W = mg.shared(np.zeros((2, 3)), name="W")
    with pytest.raises(ValueError, match=r"'W'.*\(3, 3\)"):
        W.set_value(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="'W'"):
        W.set_value(np.zeros(6))
    W.set_value(np.ones((2, 3)))
    np.testing.assert_array_equal(W.get_value(), np.ones((2, 3)))


def test_shared_with_flexible_shape():
    W = mg.shared(np.zeros((2, 3)), name="W", shape=(None, 3))
    W.set_value(np.ones((5, 3)))
    assert W.get_value().shape == (5, 3)
    with pytest.raises(ValueError, match="'W'"):
        W.set_value(np.ones((5, 4)))
    with pytest.raises(ValueError, match="shape"):
        mg.shared(np.zeros((2, 3)), name="V", shape=(None, 4))


def test_shared_set_value_lossy_dtype_raises():
    W = mg.shared(np.zeros(3, dtype="float32"), name="W")
    with pytest.raises(ValueError, match="'W'.*float32"):
        W.set_value(np.full(3, 0.1))
    W.set_value(np.full(3, 0.5))  # exact: accepted
    assert W.get_value().dtype == np.float32
    lr = mg.shared(np.float32(0.1), name="lr")
    lr.set_value(0.05)  # a Python float takes the variable's dtype
    assert lr.get_value().dtype == np.float32 and lr.get_value() == np.float32(0.05)
    with pytest.raises(ValueError, match="'lr'"):
        lr.set_value(np.float64(0.05))
    n = mg.shared(np.zeros(2, dtype="int32"), name="counts")
    with pytest.raises(ValueError, match="'counts'"):
        n.set_value(np.array([0.5, 1.0]))


def test_update_type_errors():
    W = mg.shared(np.zeros((2, 3), dtype="float32"), name="W")
    x = T.dmatrix("x")
    with pytest.raises(TypeError, match="'W'.*dimensions"):
        mg.function([], updates=[(W, W.sum(axis=0))])
    with pytest.raises(TypeError, match="'W'.*float64"):
        mg.function([x], updates=[(W, W + x)])
    with pytest.raises(ValueError, match="'W'"):
        mg.function([], updates=[(W, W.T)])
    with pytest.raises(TypeError, match="not a shared variable"):
        mg.function([x], updates=[(x, x + 1)])


# --- names are data -------------------------------------------------------------------------

EVIL = "x'\"\n)}; import os #{name}"


def test_user_names_print_escaped(mode):
    x = T.dmatrix(EVIL)
    y = T.exp(x).sum()
    y.name = "out\nput"
    for text in (repr(x), str(y), mg.pp(y)):
        assert "\n" not in text and EVIL not in text
    with pytest.raises(ValueError) as info:
        x + T.tensor("float64", (None, 5)) + mg.shared(np.ones(4), name=EVIL)
    msg = str(info.value)
    assert EVIL not in msg and repr(EVIL) in msg
    f = mg.function([x], y, mode=mode)
    with pytest.raises(TypeError) as info:
        f(np.ones(3))
    assert EVIL not in str(info.value) and repr(EVIL) in str(info.value)
    np.testing.assert_allclose(f(np.zeros((2, 2))), 4.0)
    # the compiled code never holds the raw name
    assert EVIL not in f.source()


def test_debugprint_escapes_names(capsys):
    x = T.dvector(EVIL)
    out = mg.debugprint(T.exp(x))
    text = out if isinstance(out, str) else capsys.readouterr().out
    assert EVIL not in text
    assert re.search(r"\\n", text)
