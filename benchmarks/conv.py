"""conv2d forward + backward, and the inference speedup from folding batch norm.

1. conv2d of x (64, 32, 28, 28) with filters (32, 32, 3, 3), "half" padding, float32, 2
   threads; forward and both gradients (input and filters) for a given output gradient:
   - minigraph (numba backend: parallel im2col + batched BLAS products, parallel col2im);
   - numpy: im2col through a strided view copied into columns, batched matmul, col2im by
     strided slice additions;
   - the BLAS floor: the same three matrix products alone (W @ cols, g @ cols.T, W.T @ g,
     batched over the images) on precomputed columns.
2. The seed CNN's inference (Conv2D 32 3x3 relu -> BN -> Conv2D 32 3x3 relu -> BN -> max
   pool -> Flatten -> Dense softmax) at batch 100, batch norm as trained vs folded, on 8x8
   digits-sized and 28x28 MNIST-sized inputs.

Run: ``python benchmarks/conv.py [--quick] [--threads=N]`` (re-executes itself with 2 threads,
or N, and without OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE).
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import clean_environment, table  # noqa: E402

clean_environment(threads=2)

import numpy as np  # noqa: E402

import minigraph as mg  # noqa: E402
import minigraph.tensor as T  # noqa: E402

N, C, H, W, O, K = 64, 32, 28, 28, 32, 3


# --- numpy im2col --------------------------------------------------------------------------------

def interleaved(fns, repeat):
    """Median seconds of each function, timed in turn within every round so that changes in
    the machine's load hit all of them alike."""
    import time

    for fn in fns:
        fn()
    times = [[] for _ in fns]
    for _ in range(repeat):
        for fn, ts in zip(fns, times):
            start = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - start)
    return [float(np.median(ts)) for ts in times]


def np_cols(x, k, pad):
    """(N, C*k*k, H*W) columns of a stride-1 convolution with symmetric padding."""
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = h + 2 * pad - k + 1, w + 2 * pad - k + 1
    s = xp.strides
    view = np.lib.stride_tricks.as_strided(xp, (n, c, k, k, oh, ow), (s[0], s[1], s[2], s[3], s[2], s[3]))
    return view.reshape(n, c * k * k, oh * ow)


def numpy_conv_fwd_bwd(x, w, g):
    """Cross-correlation forward, input gradient and filter gradient with numpy."""
    n, c, h, wd = x.shape
    o, _, k, _ = w.shape
    pad = k // 2
    w2 = w.reshape(o, -1)
    cols = np_cols(x, k, pad)
    out = np.matmul(w2, cols).reshape(n, o, h, wd)
    g3 = g.reshape(n, o, h * wd)
    dw = np.matmul(g3, cols.transpose(0, 2, 1)).sum(axis=0).reshape(w.shape)
    dcols = np.matmul(w2.T, g3).reshape(n, c, k, k, h, wd)
    dxp = np.zeros((n, c, h + 2 * pad, wd + 2 * pad), x.dtype)
    for i in range(k):
        for j in range(k):
            dxp[:, :, i:i + h, j:j + wd] += dcols[:, :, i, j]
    return out, dxp[:, :, pad:pad + h, pad:pad + wd], dw


def blas_floor(x, w, g):
    """The three matrix products alone, on precomputed columns and preallocated outputs."""
    o = w.shape[0]
    w2 = np.ascontiguousarray(w.reshape(o, -1))
    w2t = np.ascontiguousarray(w2.T)
    cols = np.ascontiguousarray(np_cols(x, w.shape[2], w.shape[2] // 2))
    g3 = g.reshape(g.shape[0], o, -1)
    out = np.empty((x.shape[0], o, cols.shape[2]), x.dtype)
    part = np.empty((x.shape[0], o, cols.shape[1]), x.dtype)
    dcols = np.empty_like(cols)

    def run():
        np.matmul(w2, cols, out=out)
        np.matmul(g3, cols.transpose(0, 2, 1), out=part)
        np.matmul(w2t, g3, out=dcols)

    return run


def conv_benchmark(repeat):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, C, H, W)).astype("float32")
    w = (0.1 * rng.standard_normal((O, C, K, K))).astype("float32")
    g = rng.standard_normal((N, O, H, W)).astype("float32")
    xs, ws, gs = T.tensor4("x"), T.tensor4("w"), T.tensor4("g")
    out = T.nnet.conv2d(xs, ws, border_mode="half", filter_flip=False)
    gx, gw = mg.grad(None, [xs, ws], known_grads={out: gs})
    f = mg.function([xs, ws, gs], [out, gx, gw], mode="numba")
    got = f(x, w, g)
    want = numpy_conv_fwd_bwd(x, w, g)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-3)
    t_mg, t_np, t_floor = interleaved([lambda: f(x, w, g), lambda: numpy_conv_fwd_bwd(x, w, g), blas_floor(x, w, g)],
                                      repeat)
    flops = 3 * 2 * N * O * C * K * K * H * W
    rows = [["minigraph (numba)", t_mg * 1e3, t_mg / t_floor, flops / t_mg / 1e9],
            ["numpy im2col", t_np * 1e3, t_np / t_floor, flops / t_np / 1e9],
            ["BLAS floor (3 matmuls)", t_floor * 1e3, 1.0, flops / t_floor / 1e9]]
    print(f"conv2d forward + backward, x {(N, C, H, W)}, filters {(O, C, K, K)}, half padding, float32, "
          f"{os.environ['NUMBA_NUM_THREADS']} threads")
    print(table(["implementation", "median ms", "x floor", "GFLOP/s"], rows))


def folding_benchmark(repeat):
    from minigraph.nn.sequential import BatchNormalization, seed_cnn

    rng = np.random.default_rng(0)
    rows = []
    for side in (8, 28):
        model = seed_cnn(input_shape=(1, side, side), seed=0)
        for layer in model.layers:  # statistics as after training
            if isinstance(layer, BatchNormalization):
                n = layer.inner.n_features
                layer.inner.gamma.set_value(rng.uniform(0.5, 2, n).astype("float32"))
                layer.inner.running_mean.set_value(rng.normal(size=n).astype("float32"))
                layer.inner.running_var.set_value(rng.uniform(0.5, 2, n).astype("float32"))
        x = rng.uniform(size=(100, side * side)).astype("float32")
        for mode in ("numba", "python"):
            plain = model.compile_inference(fold_batch_norm=False, mode=mode)
            folded = model.compile_inference(mode=mode)
            assert np.allclose(plain(x), folded(x), rtol=1e-4, atol=1e-5)
            t0, t1 = interleaved([lambda: plain(x), lambda: folded(x)], repeat)
            rows.append([f"{side}x{side}", mode, t0 * 1e3, t1 * 1e3, t0 / t1])
    print("\nseed CNN inference at batch 100: batch norm as trained vs folded")
    print(table(["input", "mode", "unfolded ms", "folded ms", "speedup"], rows))


def main():
    quick = "--quick" in sys.argv
    repeat = 5 if quick else 15
    print(f"load average {os.getloadavg()[0]:.2f} (other processes share the cores: compare ratios)\n")
    conv_benchmark(repeat)
    folding_benchmark(3 * repeat)


if __name__ == "__main__":
    main()
