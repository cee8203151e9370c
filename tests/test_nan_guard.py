"""The NaN guard: ``mg.function(..., nan_guard=True)`` (and mode="debug") raises at the first
node that turns finite inputs into NaN or Inf, naming the node, its inputs' ranges and the
user's line that built it; with the guard off the same call returns the NaN quietly."""
import importlib.util

import numpy as np
import pytest

import minigraph as mg
import minigraph.tensor as T


def _line_of(marker: str) -> int:
    """The line number in this file of the line containing ``marker``."""
    with open(__file__) as f:
        for i, line in enumerate(f, start=1):
            if marker in line and "_line_of" not in line:
                return i
    raise AssertionError(marker)


def test_log_of_zero_is_caught_with_node_ranges_and_line(mode):
    x = T.vector("x")
    y = T.log(x - 1.0)  # NAN-GUARD-LOG
    out = y * 2.0
    f = mg.function([x], out, mode=mode, nan_guard=True)
    np.testing.assert_allclose(f(np.array([2.0, 3.0], "float32")), 2 * np.log([1.0, 2.0]), rtol=1e-6)
    with pytest.raises(FloatingPointError) as info:
        f(np.array([1.0, 3.0], "float32"))
    message = str(info.value)
    assert "log" in message
    assert "[0, 2]" in message  # the range of log's finite input x - 1
    assert f"line {_line_of('NAN-GUARD-LOG')}" in message
    assert "NAN-GUARD-LOG" in message  # the user's source line itself


def test_without_guard_nan_passes_quietly(mode):
    x = T.vector("x")
    f = mg.function([x], T.log(x - 1.0), mode=mode)
    out = f(np.array([1.0, 0.0], "float32"))
    assert np.isneginf(out[0]) and np.isnan(out[1])


def test_nan_inputs_are_not_blamed(mode):
    """The guard looks for the node that creates NaN; NaN given by the caller flows through."""
    x = T.vector("x")
    f = mg.function([x], T.exp(x) * 2.0, mode=mode, nan_guard=True)
    out = f(np.array([np.nan, 1.0], "float32"))
    assert np.isnan(out[0]) and out[1] == pytest.approx(2 * np.e, rel=1e-6)


def test_overflow_to_inf_is_caught(mode):
    x = T.vector("x")
    y = T.exp(x)  # NAN-GUARD-EXP
    f = mg.function([x], y.sum(), mode=mode, nan_guard=True)
    with pytest.raises(FloatingPointError) as info:
        f(np.array([1.0, 100.0], "float32"))  # exp(100) overflows float32
    assert "exp" in str(info.value)
    assert f"line {_line_of('NAN-GUARD-EXP')}" in str(info.value)


def test_gradient_nodes_name_the_grad_line(mode):
    x = T.vector("x")
    cost = T.sqrt(x).sum()
    g = mg.grad(cost, x)  # NAN-GUARD-GRAD
    f = mg.function([x], g, mode=mode, nan_guard=True)
    np.testing.assert_allclose(f(np.array([4.0], "float32")), [0.25])
    with pytest.raises(FloatingPointError) as info:
        f(np.array([0.0, 4.0], "float32"))  # d sqrt / dx = inf at 0
    assert f"line {_line_of('NAN-GUARD-GRAD')}" in str(info.value)


def test_updates_are_not_applied_when_the_guard_fires(mode):
    W = mg.shared(np.array([1.0, 2.0], "float32"), name="W")
    x = T.vector("x")
    cost = T.sum(T.log(W * x))
    step = mg.function([x], cost, updates=[(W, W - 0.1 * mg.grad(cost, W))], mode=mode, nan_guard=True)
    step(np.array([1.0, 1.0], "float32"))
    before = W.get_value()
    with pytest.raises(FloatingPointError):
        step(np.array([0.0, 1.0], "float32"))
    np.testing.assert_array_equal(W.get_value(), before)


def test_reduction_of_finite_values_overflowing(mode):
    x = T.vector("x", dtype="float32")
    f = mg.function([x], x.sum(), mode=mode, nan_guard=True)
    with pytest.raises(FloatingPointError, match="sum"):
        f(np.array([3e38, 3e38], "float32"))


def test_nan_guard_with_fused_elementwise_names_the_step(mode):
    """After fusion the node is a composite; the message says which step made the NaN."""
    x = T.vector("x")
    y = T.tanh(x) * T.sqrt(x - 2.0) + 1.0  # NAN-GUARD-FUSED
    f = mg.function([x], y, mode=mode, nan_guard=True)
    with pytest.raises(FloatingPointError) as info:
        f(np.array([1.0, 3.0], "float32"))
    message = str(info.value)
    assert "sqrt" in message
    if "composite" in message:  # fused: the message says which step of the program
        assert "first step of the fused program to do so: sqrt(" in message
    assert f"line {_line_of('NAN-GUARD-FUSED')}" in message


def test_integer_division_by_zero_is_not_a_nan():
    x = T.ivector("x")
    f = mg.function([x], x // 2, mode="python", nan_guard=True)
    np.testing.assert_array_equal(f(np.array([3, 4], "int32")), [1, 2])


@pytest.mark.skipif(importlib.util.find_spec("minigraph.backends.debug") is None,
                    reason="the debug mode (minigraph/backends/debug.py) is not there yet")
def test_debug_mode_guards_too():
    x = T.vector("x")
    f = mg.function([x], T.log(x), mode="debug")
    with pytest.raises(FloatingPointError, match="log"):
        f(np.array([0.0, 1.0], "float32"))
