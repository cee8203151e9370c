"""One training step of the seed MLP on the numba backend against its matrix products alone,
and the compile time of that step (cold: empty cache; warm: a second process, which loads the
compiled kernels and the rewritten graph from the cache; and warm with the rewrites run again).

The MLP: 784 -> 10 x [dense 784 without bias -> batch norm -> tanh] -> dense 10 with bias ->
softmax -> negative log-likelihood; SGD with learning rate 0.01 on every parameter (gamma and
beta too); running averages updated; batch 100.  The matrix products are the same ones the
step computes (11 forward, 11 weight gradients, 10 input gradients), through the same BLAS,
timed in the same run.  ``--profile`` prints, instead, the time of each kernel of the step.
Run: ``python benchmarks/mlp_step.py [--quick] [--threads=N] [--no-compile] [--profile]``.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import clean_environment, median_ratio, table, time_samples  # noqa: E402

if __name__ == "__main__":  # (the compile-time child processes import this module as it is)
    clean_environment(threads=2)

import numpy as np  # noqa: E402

BATCH, WIDTH, DEPTH, CLASSES = 100, 784, 10, 10


def build_step(profile=False):
    """The compiled training step and its inputs."""
    import minigraph as mg
    import minigraph.tensor as T

    rng = np.random.default_rng(0)
    x = T.fmatrix("x")
    y = T.ivector("y")
    params, updates, h = [], [], x
    for k in range(DEPTH):
        w = mg.shared((rng.standard_normal((WIDTH, WIDTH)) / np.sqrt(WIDTH)).astype("float32"), name=f"W{k}")
        gamma = mg.shared(np.ones(WIDTH, "float32"), name=f"gamma{k}")
        beta = mg.shared(np.zeros(WIDTH, "float32"), name=f"beta{k}")
        rmean = mg.shared(np.zeros(WIDTH, "float32"), name=f"running_mean{k}")
        rvar = mg.shared(np.ones(WIDTH, "float32"), name=f"running_var{k}")
        out, _, _, new_mean, new_var = T.nnet.bn.batch_normalization_train(
            T.dot(h, w), gamma, beta, axes="per-activation", running_mean=rmean, running_var=rvar)
        h = T.tanh(out)
        params += [w, gamma, beta]
        updates += [(rmean, new_mean), (rvar, new_var)]
    w_out = mg.shared((rng.standard_normal((WIDTH, CLASSES)) / np.sqrt(WIDTH)).astype("float32"), name="W_out")
    b_out = mg.shared(np.zeros(CLASSES, "float32"), name="b_out")
    params += [w_out, b_out]
    p = T.nnet.softmax(T.dot(h, w_out) + b_out)
    cost = -T.mean(T.log(p)[T.arange(y.shape[0]), y])
    grads = mg.grad(cost, params)
    updates += [(v, v - np.float32(0.01) * g) for v, g in zip(params, grads)]
    start = time.perf_counter()
    f = mg.function([x, y], cost, updates=updates, mode="numba", profile=profile)
    xv = rng.standard_normal((BATCH, WIDTH)).astype("float32")
    yv = rng.integers(0, CLASSES, BATCH).astype("int32")
    first = f(xv, yv)
    return f, xv, yv, time.perf_counter() - start, float(first)


def products(xv):
    """The step's matrix products, through numpy's BLAS (the one the backend calls)."""
    rng = np.random.default_rng(1)
    ws = [rng.standard_normal((WIDTH, WIDTH)).astype("float32") for _ in range(DEPTH)]
    w_out = rng.standard_normal((WIDTH, CLASSES)).astype("float32")
    hs = [rng.standard_normal((BATCH, WIDTH)).astype("float32") for _ in range(DEPTH + 1)]
    g = rng.standard_normal((BATCH, WIDTH)).astype("float32")
    g_out = rng.standard_normal((BATCH, CLASSES)).astype("float32")
    out_big = np.empty((BATCH, WIDTH), np.float32)
    out_w = np.empty((WIDTH, WIDTH), np.float32)

    def run():
        for k in range(DEPTH):  # forward
            np.dot(hs[k], ws[k], out=out_big)
        np.dot(hs[DEPTH], w_out)
        np.dot(hs[DEPTH].T, g_out)  # output layer: weight gradient and input gradient
        np.dot(g_out, w_out.T, out=out_big)
        for k in range(DEPTH):  # hidden layers: weight gradients, input gradients but the first
            np.dot(hs[k].T, g, out=out_w)
            if k:
                np.dot(g, ws[k].T, out=out_big)

    return run


COMPILE_SCRIPT = r"""
import json, os, sys, time
t0 = time.perf_counter()
import numba  # noqa: F401
t_import = time.perf_counter() - t0
sys.path.insert(0, os.path.join(os.getcwd(), "benchmarks"))
import mlp_step
from minigraph.backends.numba import cache
from minigraph.compile import graph_cache
f, xv, yv, seconds, first = mlp_step.build_step()
print(json.dumps(dict(seconds=seconds, numba_import=t_import, graph_restored=graph_cache.stats()["hits"],
                      **cache.stats())))
"""


def compile_times():
    """(cold, warm, warm rewriting) seconds from ``mg.function`` to the first result, in fresh
    processes: the first with an empty compile cache, the last with the rewritten-graph cache
    off (``MINIGRAPH_GRAPH_CACHE=0``: the rewrites run).  All keep Python's bytecode of the
    modules they import, as Python does unless PYTHONDONTWRITEBYTECODE is set (it is on some
    machines): mg.function imports the rewrites and the backend, which would otherwise be
    compiled from source in every process, warm or not."""
    with tempfile.TemporaryDirectory() as d:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["MINIGRAPH_CACHE_DIR"] = d
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        out = []
        for graph_cache_on in ("1", "1", "0"):
            res = subprocess.run([sys.executable, "-c", COMPILE_SCRIPT], cwd=root, capture_output=True, text=True,
                                 env=dict(env, MINIGRAPH_GRAPH_CACHE=graph_cache_on), timeout=900)
            if res.returncode:
                raise RuntimeError(res.stderr)
            out.append(json.loads(res.stdout.strip().splitlines()[-1]))
        return out


def main():
    quick = "--quick" in sys.argv
    if "--profile" in sys.argv:
        f, xv, yv, _, _ = build_step(profile=True)
        for _ in range(5):
            f(xv, yv)
        f.profile.reset()
        for _ in range(50):
            f(xv, yv)
        print(f.profile.summary(limit=40))
        return
    f, xv, yv, _, _ = build_step()
    rep = 7 if quick else 21
    steps, prods = time_samples([lambda: f(xv, yv), products(xv)], repeat=rep, min_time=0.1)
    print(table(["what", "ms per step (median)", "ratio (median over rounds)"],
                [["training step (minigraph, numba)", statistics.median(steps) * 1e3, median_ratio(steps, prods)],
                 ["its matrix products alone (numpy BLAS)", statistics.median(prods) * 1e3, 1.0]]))
    print("target: ratio <= 1.25 (the two take turns in each round)")
    if "--no-compile" not in sys.argv:
        runs = zip(["cold (empty cache)", "warm (second process)", "warm, rewrites run (graph cache off)"],
                   compile_times())
        print(table(["compile", "seconds to first result", "numba compilations", "kernel cache hits",
                     "rewritten graph restored", "numba import s"],
                    [[what, r["seconds"], r["compiled"], r["cache_hits"], "yes" if r["graph_restored"] else "no",
                      r["numba_import"]] for what, r in runs]))
        print("targets: cold <= 10 s, warm <= 1 s (numba imported before mg.function is called)")


if __name__ == "__main__":
    main()
