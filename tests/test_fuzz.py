"""Random well-typed graphs (tests/graphgen.py) checked four ways:

(a) every backend (the conftest MODES) agrees with the python reference, outputs and
    gradients; (b) the rewritten graph agrees with the unrewritten one; (c) gradients agree
    with central finite differences in float64 (graphs with kinks like abs or max skipped);
(d) float32 inputs give float32 outputs and gradients, in the types and at run time.

The default suite runs a bounded, derandomized number of examples (MINIGRAPH_FUZZ_EXAMPLES
raises it); ``pytest -m fuzz`` runs a long randomized search for hand use.
"""
import contextlib
import os
import warnings
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import minigraph as mg
from conftest import MODES  # pytest puts tests/ (no __init__.py) on sys.path
from graphgen import Program, programs

N = int(os.environ.get("MINIGRAPH_FUZZ_EXAMPLES", "25"))
# each example compiles numba kernels (about a second each): fewer of those by default
N_COMPILED = int(os.environ.get("MINIGRAPH_FUZZ_COMPILED_EXAMPLES", str(max(4, N // 6))))

_common = dict(deadline=None, database=None, print_blob=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
bounded = settings(max_examples=N, derandomize=True, **_common)
bounded_compiled = settings(max_examples=N_COMPILED, derandomize=True, **_common)
long_run = settings(max_examples=int(os.environ.get("MINIGRAPH_FUZZ_LONG", "400")), **_common)


def _with_grads(prog: Program, dtype: str, ref_mode="python", static_ones=False):
    """(inputs, outputs + gradients of a random projection of the outputs, values)."""
    inputs, outputs, values = prog.build(dtype, static_ones=static_ones)
    shapes = [np.shape(v) for v in mg.function(inputs, outputs, mode=ref_mode, on_unused_input="ignore",
                                                 rewrites=None)(*values)]
    rng = np.random.default_rng(prog.seed + 1)
    cost = 0.0
    for out, shape in zip(outputs, shapes):
        u = rng.standard_normal(shape).astype(dtype)
        cost = cost + mg.tensor.sum(out * u)
    wrt = [v for v in inputs if v.dtype == dtype]
    grads = mg.grad(cost, wrt, disconnected_inputs="ignore") if wrt else []
    return inputs, outputs, list(grads), cost, wrt, values


def _close(got, want, what, prog):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != reference {want.shape}\n{prog!r}"
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype} != reference {want.dtype}\n{prog!r}"
    scale = float(np.max(np.abs(want))) if want.size else 0.0
    np.testing.assert_allclose(got, want, rtol=5e-4, atol=5e-4 * (1.0 + scale), err_msg=f"{what}\n{prog!r}")


def _run_both(prog, mode_a, mode_b, rewrites_a="fast_run", rewrites_b="fast_run", dtype="float32",
              static_ones=False, parallel=False, compiled_driver=False):
    inputs, outputs, grads, _, _, values = _with_grads(prog, dtype, static_ones=static_ones)
    everything = outputs + grads
    with _parallel_kernels(parallel), _compiled_driver(compiled_driver):
        fa = mg.function(inputs, everything, mode=mode_a, rewrites=rewrites_a, on_unused_input="ignore")
    fb = mg.function(inputs, everything, mode=mode_b, rewrites=rewrites_b, on_unused_input="ignore")
    with warnings.catch_warnings():
        if static_ones:
            # every length 1 is static, so no compiled kernel may fail and quietly rerun on the reference
            warnings.filterwarnings("error", message=".*compiled kernel failed")
        ra, rb = fa(*values), fb(*values)
    for k, (a, b) in enumerate(zip(ra, rb)):
        what = f"output {k}" if k < len(outputs) else f"gradient {k - len(outputs)}"
        _close(a, b, f"{what}: {mode_a}/{rewrites_a} vs {mode_b}/{rewrites_b}", prog)
    return everything, ra


@contextlib.contextmanager
def _parallel_kernels(on: bool):
    """With ``on``, the numba backend runs the parallel variant of every kernel, however small
    the arrays (its threshold is set to 0 while the function is compiled)."""
    if not on or "numba" not in MODES:
        yield
        return
    from minigraph.backends.numba import linker

    old = linker.PARALLEL_THRESHOLD
    linker.PARALLEL_THRESHOLD = 0
    try:
        yield
    finally:
        linker.PARALLEL_THRESHOLD = old


def _compiled_driver(on: bool):
    """With ``on``, a numba function built inside compiles its whole driver at its first call
    (where every step has a compiled form)."""
    return mock.patch.dict(os.environ, {"MINIGRAPH_COMPILED_DRIVER": "0"} if on else {})


@pytest.mark.parametrize("mode", [m for m in MODES if m != "python"] or
                         [pytest.param("numba", marks=pytest.mark.skip(reason="no numba backend yet"))])
@pytest.mark.filterwarnings("ignore:.*parallel=True.*no transformation for parallel")
@pytest.mark.filterwarnings("ignore:.*prange or pndindex loop will not be executed in parallel")
@bounded_compiled
@given(prog=programs())
def test_backend_matches_python_reference(mode, prog):
    """(a) outputs and gradients of every backend equal the python reference's, either with
    every length 1 static (the compiled kernels must run), or with lengths 1 known only at
    run time (a backend may fall back to the reference there, but must be right).  The
    first kind runs the numba kernels' parallel variants, the second their serial ones in the
    compiled driver where the graph has one.  Each example runs one kind (by its seed's
    parity), to halve the compile time."""
    if prog.seed % 2 == 0:
        _run_both(prog, mode, "python", static_ones=True, parallel=True)
    else:
        _run_both(prog, mode, "python", compiled_driver=True)


@bounded
@given(prog=programs())
def test_rewrites_on_equal_rewrites_off(prog):
    """(b) the rewrite pipeline changes no value (checked on the python reference)."""
    _run_both(prog, "python", "python", "fast_run", None)


def _fd_check(prog: Program):
    inputs, outputs, grads, cost, wrt, values = _with_grads(prog, "float64")
    if not wrt:
        return
    f = mg.function(inputs, cost, mode="python", on_unused_input="ignore")
    g = mg.function(inputs, grads, mode="python", on_unused_input="ignore")(*values)
    rng = np.random.default_rng(prog.seed + 2)
    float_pos = [i for i, v in enumerate(inputs) if v.dtype == "float64"]
    directions = {i: rng.standard_normal(np.shape(values[i])) for i in float_pos}
    eps = 1e-6
    plus = [v + eps * directions[i] if i in directions else v for i, v in enumerate(values)]
    minus = [v - eps * directions[i] if i in directions else v for i, v in enumerate(values)]
    numeric = (float(f(*plus)) - float(f(*minus))) / (2 * eps)
    analytic = sum(float(np.sum(gi * directions[i])) for gi, i in zip(g, float_pos))
    tol = 1e-5 * max(1.0, abs(numeric), abs(analytic))
    assert abs(numeric - analytic) <= tol, \
        f"gradient {analytic!r} != finite differences {numeric!r}\n{prog!r}"


@bounded
@given(prog=programs())
def test_gradients_match_finite_differences(prog):
    """(c) the directional derivative <grad, d> equals (f(x + eps d) - f(x - eps d)) / 2 eps."""
    if prog.kinked():
        return
    _fd_check(prog)


@bounded
@given(prog=programs())
def test_float32_stays_float32(prog):
    """(d) float32 inputs give float32 outputs and gradients, in the types and at run time
    (the other backends' run-time dtypes are checked against the reference's in (a))."""
    inputs, outputs, grads, _, _, values = _with_grads(prog, "float32")
    for v in outputs + grads:
        assert v.dtype == "float32", f"{v!r} has type {v.type}\n{prog!r}"
    results = mg.function(inputs, outputs + grads, mode="python", on_unused_input="ignore")(*values)
    for r in results:
        assert r.dtype == np.float32, f"a result has dtype {r.dtype}\n{prog!r}"


# --- long runs, by hand: pytest -m fuzz tests/test_fuzz.py ----------------------------------------

@pytest.mark.fuzz
@pytest.mark.filterwarnings("ignore:.*parallel=True.*no transformation for parallel")
@pytest.mark.filterwarnings("ignore:.*prange or pndindex loop will not be executed in parallel")
@long_run
@given(prog=programs(max_steps=10))
def test_fuzz_long_all_checks(prog):
    _run_both(prog, "python", "python", "fast_run", None)
    for mode in MODES:
        if mode != "python":
            _run_both(prog, mode, "python", static_ones=True, parallel=True)
            _run_both(prog, mode, "python")
    if not prog.kinked():
        _fd_check(prog)


# --- regressions found by the fuzzer --------------------------------------------------------------

def test_regression_gradient_of_reshaped_dot_has_no_cycle(mode):
    """The shape rewrites read dot's length from the reshape in its own gradient, a variable
    that needs that length first: a cycle, so the interpreter met an uncomputed value."""
    x1, x3 = mg.tensor.dmatrix("x1"), mg.tensor.dvector("x3")
    out = mg.tensor.dot(x1, x3).reshape((3,))
    g = mg.grad(out.sum(), x3)
    f = mg.function([x1, x3], g, mode=mode)
    a = np.arange(9.0).reshape(3, 3)
    np.testing.assert_allclose(f(a, np.ones(3)), a.sum(axis=0))
