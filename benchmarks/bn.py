"""Batch normalization forward + backward: minigraph (numba backend, the op's default
autodiff-derived gradient) against numpy by hand and against the bandwidth floor.

The floor is 8 passes of 4 bytes per element (forward: read x for the statistics, read x and
write y; backward: read x and dy for the two sums, read x and dy and write dx) over the
measured triad bandwidth.  A third reference, for the per-activation cases, is batch norm
written by hand as four fused numba kernels: the practical limit on the machine at hand.

Each case is built twice: with every length but the batch's known when building (as in a
model, whose gamma and beta are shared variables: the target rows), and with every length
known only at run time ("run-time lengths"), where a length may still turn out to be 1 and
broadcast, so the gradient keeps run-time sums that limit fusion.  Each function is called
until it is hot before it is timed: small calls then run the compiled driver ("driver" column).
Run: ``python benchmarks/bn.py [--quick] [--threads=N]``.
"""
from __future__ import annotations

import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import clean_environment, table, time_samples, triad  # noqa: E402

clean_environment(threads=2)

import numpy as np  # noqa: E402

import minigraph as mg  # noqa: E402
import minigraph.tensor as T  # noqa: E402
from minigraph.backends.numba.linker import COMPILED_DRIVER_MAX_SIZE, compiled_driver_after  # noqa: E402

EPS = 1e-4


def numpy_bn(x, gamma, beta, dy, axes):
    """Forward and the paper's backward formulas, written with numpy."""
    m = np.prod([x.shape[a] for a in axes])
    mean = x.mean(axis=axes, keepdims=True)
    xc = x - mean
    var = (xc * xc).mean(axis=axes, keepdims=True)
    invstd = 1 / np.sqrt(var + EPS)
    xhat = xc * invstd
    y = gamma * xhat + beta
    dbeta = dy.sum(axis=axes, keepdims=True)
    dgamma = (dy * xhat).sum(axis=axes, keepdims=True)
    dx = gamma * invstd / m * (m * dy - dbeta - xhat * dgamma)
    return y, dx, dgamma, dbeta


def hand_fused_kernels():
    """Batch norm over axis 0 of an (N, D) array written by hand as four numba kernels
    (statistics, normalize, backward sums, dx), parallel over row blocks with per-block
    partial sums: what a compiler that fuses well can hope to match on this machine."""
    from numba import njit, prange

    def both(fn):  # a serial and a parallel variant, as minigraph compiles its kernels
        opts = dict(fastmath=True, error_model="numpy")
        return njit(**opts)(fn), njit(parallel=True, **opts)(fn)

    @both
    def statistics(x, nb):
        n, d = x.shape
        s, ss = np.zeros((nb, d)), np.zeros((nb, d))
        for b in prange(nb):
            for i in range(b * n // nb, (b + 1) * n // nb):
                for j in range(d):
                    v = np.float64(x[i, j])
                    s[b, j] += v
                    ss[b, j] += v * v
        mean, var = s.sum(axis=0) / n, ss.sum(axis=0) / n
        var -= mean * mean
        return mean.astype(np.float32), (1.0 / np.sqrt(var + EPS)).astype(np.float32)

    @both
    def normalize(x, mean, invstd, gamma, beta, y):
        for i in prange(x.shape[0]):
            for j in range(x.shape[1]):
                y[i, j] = (x[i, j] - mean[j]) * invstd[j] * gamma[j] + beta[j]

    @both
    def backward_sums(x, dy, mean, invstd, nb):
        n, d = x.shape
        a, c = np.zeros((nb, d)), np.zeros((nb, d))
        for b in prange(nb):
            for i in range(b * n // nb, (b + 1) * n // nb):
                for j in range(d):
                    g = np.float64(dy[i, j])
                    a[b, j] += g
                    c[b, j] += g * (x[i, j] - mean[j])
        return a.sum(axis=0).astype(np.float32), (c.sum(axis=0) * invstd).astype(np.float32)

    @both
    def input_gradient(x, dy, mean, invstd, gamma, dbeta, dgamma, dx):
        n = x.shape[0]
        for i in prange(n):
            for j in range(x.shape[1]):
                xhat = (x[i, j] - mean[j]) * invstd[j]
                dx[i, j] = gamma[j] * invstd[j] / n * (n * dy[i, j] - dbeta[j] - xhat * dgamma[j])

    def run(x, gamma, beta, dy, y, dx):
        par = x.size >= 1 << 18  # minigraph's threshold for parallel kernels
        nb = int(os.environ["NUMBA_NUM_THREADS"]) if par else 1
        mean, invstd = statistics[par](x, nb)
        normalize[par](x, mean, invstd, gamma, beta, y)
        dbeta, dgamma = backward_sums[par](x, dy, mean, invstd, nb)
        input_gradient[par](x, dy, mean, invstd, gamma, dbeta, dgamma, dx)
        return y, dx, dgamma, dbeta

    return run


def build(shape, axes_name, static_features=False):
    """The BN graph: every length but the batch's known when building (``static_features``,
    as in a model whose parameters are shared variables), or every length known only at run time."""
    pshape = (1, shape[1]) + (1,) * (len(shape) - 2) if axes_name == "spatial" else (1,) + shape[1:]
    xshape = (None,) + tuple(shape[1:]) if static_features else (None,) * len(shape)
    static = pshape if static_features else tuple(1 if s == 1 else None for s in pshape)
    x = T.tensor(dtype="float32", shape=xshape, name="x")
    gamma = T.tensor(dtype="float32", shape=static, name="gamma")
    beta = T.tensor(dtype="float32", shape=static, name="beta")
    dy = T.tensor(dtype="float32", shape=xshape, name="dy")
    out, mean, invstd = T.nnet.bn.batch_normalization_train(x, gamma, beta, axes=axes_name, epsilon=EPS)
    dx, dgamma, dbeta = mg.grad(None, [x, gamma, beta], known_grads={out: dy})
    f = mg.function([x, gamma, beta, dy], [out, dx, dgamma, dbeta], mode="numba")
    return f, pshape


def main():
    quick = "--quick" in sys.argv
    call, nbytes = triad()
    best_triads = []

    def bandwidth():  # the best of three back to back, as STREAM keeps its best: the machine's best rate
        times = []
        for _ in range(3):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
        best_triads.append(min(times))
    cases = [((8192, 1024), "per-activation", (0,)), ((64, 64, 56, 56), "spatial", (0, 2, 3)),
             ((100, 784), "per-activation", (0,))]
    rows, notes = [], []
    rng = np.random.default_rng(0)
    hand = hand_fused_kernels()
    for (shape, axes_name, axes), static in [(c, s) for s in (True, False) for c in cases]:
        f, pshape = build(shape, axes_name, static_features=static)
        x = rng.standard_normal(shape).astype("float32")
        dy = rng.standard_normal(shape).astype("float32")
        gamma = (1 + 0.1 * rng.standard_normal(pshape)).astype("float32")
        beta = (0.1 * rng.standard_normal(pshape)).astype("float32")
        for _ in range(int(min(compiled_driver_after(), 100))):  # hot: small calls get the compiled driver
            f(x, gamma, beta, dy)
        start = time.perf_counter()
        got = f(x, gamma, beta, dy)  # the call that compiles the driver, where there is one
        driver = "compiled" if f._thunk._jit is not None and x.size <= COMPILED_DRIVER_MAX_SIZE else "python"
        if driver == "compiled":
            notes.append(f"{shape}: the call that compiled the driver took {time.perf_counter() - start:.2f} s")
        want = numpy_bn(x, gamma, beta, dy, axes)
        err = max(float(np.max(np.abs(g - w.reshape(g.shape))) / (np.max(np.abs(w)) + 1e-30))
                  for g, w in zip(got, want))
        small = x.size < 1e6
        rep = 5 if quick else 15
        sides = [bandwidth, lambda: f(x, gamma, beta, dy), lambda: numpy_bn(x, gamma, beta, dy, axes)]
        if axes_name == "per-activation" and static:  # (the spatial layout needs kernels of its own)
            y, dx = np.empty_like(x), np.empty_like(x)
            args = (x, gamma[0], beta[0], dy, y, dx)
            hand_err = max(float(np.max(np.abs(g - w.reshape(g.shape))) / (np.max(np.abs(w)) + 1e-30))
                           for g, w in zip(hand(*args), want))
            assert hand_err < 1e-4, hand_err
            sides.append(lambda: hand(*args))
        # the sides take turns in each round: a shared machine's slow minutes fall on all of them
        best_triads.clear()
        medians = [statistics.median(t) for t in time_samples(sides, repeat=rep, min_time=0.05 if small else 0.0)]
        bw = nbytes / statistics.median(best_triads)
        floor = 8 * 4 * x.size / bw
        t_mg, t_np = medians[1:3]
        t_hand = medians[3] * 1e3 if len(medians) > 3 else "-"
        label = f"{shape} {axes_name}" + ("" if static else ", run-time lengths")
        rows.append([label, driver, t_mg * 1e3, t_np * 1e3, t_hand, floor * 1e3, bw / 1e9, t_mg / floor,
                     t_np / floor, f"{err:.1e}"])
    print(table(["case", "driver", "minigraph ms", "numpy ms", "hand-fused numba ms", "floor ms", "triad GB/s",
                 "minigraph/floor", "numpy/floor", "rel err"], rows))
    print(f"(triad: numba, {os.environ['NUMBA_NUM_THREADS']} threads, float32, the best of three back to back in each "
          "round of the case)")
    print("targets: minigraph/floor <= 1.2 at the two large shapes; <= 0.1 ms per call at (100, 784)\n"
          "(the rows with lengths known when building, as in a model)")
    print("\n".join(notes))


if __name__ == "__main__":
    main()
