"""conv2d and pool_2d: forward values against direct loops, gradients against finite
differences (first and second order), static shapes and build-time errors, on every backend."""
import numpy as np
import pytest

import minigraph as mg
import minigraph.tensor as T
from minigraph.tensor.nnet.conv import Conv2d, Conv2dGradInputs, Conv2dGradWeights, conv_padding
from minigraph.tensor.signal.pool import pool_out_length


# --- direct loop references --------------------------------------------------------------

def conv_loops(x, w, border_mode, stride, flip, dil):
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    ph, pw = conv_padding(border_mode, kh, kw, dil)
    xp = np.zeros((n, c, h + 2 * ph, wd + 2 * pw), x.dtype)
    xp[:, :, ph:ph + h, pw:pw + wd] = x
    if flip:
        w = w[:, :, ::-1, ::-1]
    oh = (h + 2 * ph - (kh - 1) * dil[0] - 1) // stride[0] + 1
    ow = (wd + 2 * pw - (kw - 1) * dil[1] - 1) // stride[1] + 1
    out = np.zeros((n, o, oh, ow))
    for a in range(n):
        for b in range(o):
            for y in range(oh):
                for z in range(ow):
                    for i in range(kh):
                        for j in range(kw):
                            out[a, b, y, z] += np.dot(w[b, :, i, j], xp[a, :, y * stride[0] + i * dil[0],
                                                                        z * stride[1] + j * dil[1]])
    return out


def pool_loops(x, ws, ignore_border, stride, pad, mode):
    h, w = x.shape[-2:]
    oh = pool_out_length(h, ws[0], stride[0], pad[0], ignore_border)
    ow = pool_out_length(w, ws[1], stride[1], pad[1], ignore_border)
    out = np.zeros(x.shape[:-2] + (oh, ow))
    for idx in np.ndindex(*x.shape[:-2]):
        for i in range(oh):
            for j in range(ow):
                vals, total = [], 0
                for r in range(i * stride[0] - pad[0], i * stride[0] - pad[0] + ws[0]):
                    for c in range(j * stride[1] - pad[1], j * stride[1] - pad[1] + ws[1]):
                        if r >= h + pad[0] or c >= w + pad[1]:
                            continue  # beyond the padded edge (ignore_border=False windows)
                        total += 1
                        if 0 <= r < h and 0 <= c < w:
                            vals.append(x[idx + (r, c)])
                if mode == "max":
                    out[idx + (i, j)] = max(vals)
                elif mode == "average_inc_pad":
                    out[idx + (i, j)] = sum(vals) / total
                else:
                    out[idx + (i, j)] = sum(vals) / len(vals)
    return out


# --- conv2d ------------------------------------------------------------------------------

CONV_CASES = [
    # (input shape, filter shape, border_mode, subsample, dilation)
    ((2, 3, 7, 6), (4, 3, 3, 2), "valid", (1, 1), (1, 1)),
    ((2, 3, 7, 6), (4, 3, 3, 3), "half", (1, 1), (1, 1)),
    ((1, 2, 5, 5), (3, 2, 2, 3), "full", (1, 1), (1, 1)),
    ((2, 2, 8, 7), (2, 2, 3, 3), (1, 2), (2, 1), (1, 1)),
    ((1, 3, 9, 8), (2, 3, 3, 2), "half", (2, 2), (2, 1)),
    ((2, 1, 9, 9), (2, 1, 2, 2), "valid", (3, 2), (2, 3)),
]


@pytest.mark.parametrize("flip", [True, False])
@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_forward_matches_loops(mode, rng, case, flip):
    xs, ws, bm, st, dil = case
    x, w = T.tensor4("x", "float64"), T.tensor4("w", "float64")
    out = T.nnet.conv2d(x, w, border_mode=bm, subsample=st, filter_flip=flip, filter_dilation=dil)
    xv, wv = rng.standard_normal(xs), rng.standard_normal(ws)
    got = mg.function([x, w], out, mode=mode)(xv, wv)
    np.testing.assert_allclose(got, conv_loops(xv, wv, bm, st, flip, dil), rtol=1e-10, atol=1e-10)


def test_conv2d_float32_and_static_shape(mode, rng):
    x = T.tensor4("x", "float32", shape=(None, 3, 8, 8))
    w = mg.shared(rng.standard_normal((5, 3, 3, 3)).astype("float32"), name="w")
    out = T.nnet.conv2d(x, w, border_mode="half", subsample=(2, 2))
    assert out.type.shape == (None, 5, 4, 4) and out.dtype == "float32"
    xv = rng.standard_normal((2, 3, 8, 8)).astype("float32")
    got = mg.function([x], out, mode=mode)(xv)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, conv_loops(xv, w.get_value(), "half", (2, 2), True, (1, 1)), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("case", [CONV_CASES[0], CONV_CASES[2], CONV_CASES[4]])
def test_conv2d_gradients_match_finite_differences(mode, rng, case):
    xs, ws, bm, st, dil = case
    for flip in (True, False):
        mg.verify_grad(lambda x, w: T.nnet.conv2d(x, w, border_mode=bm, subsample=st, filter_flip=flip,
                                                  filter_dilation=dil),
                       [rng.standard_normal(xs), rng.standard_normal(ws)], rng=rng, mode=mode)


def test_conv2d_gradient_is_made_of_convolutions_and_differentiates_again(mode, rng):
    x, w = T.tensor4("x", "float64"), T.tensor4("w", "float64")
    cost = T.sum(T.sqr(T.nnet.conv2d(x, w, border_mode="half", subsample=(2, 1))))
    gx, gw = mg.grad(cost, [x, w])
    assert isinstance(gx.owner.op, Conv2dGradInputs) or any(
        isinstance(n.op, Conv2dGradInputs) for n in mg.graph.basic.toposort([gx]))
    assert any(isinstance(n.op, Conv2dGradWeights) for n in mg.graph.basic.toposort([gw]))
    # second order: the gradient of ||d cost / dx||^2 with respect to x and w
    xv, wv = rng.standard_normal((2, 2, 5, 4)), rng.standard_normal((3, 2, 3, 2))

    def fn(x, w):
        c = T.sum(T.sqr(T.nnet.conv2d(x, w, border_mode="half", subsample=(2, 1))))
        return T.sum(T.sqr(mg.grad(c, x))) + T.sum(T.sqr(mg.grad(c, w)))

    mg.verify_grad(fn, [xv, wv], rng=rng, mode=mode)


def test_conv2d_build_time_errors():
    x = T.tensor4("x", shape=(None, 3, 5, 5))
    with pytest.raises(ValueError, match=r"channel mismatch.*\[\?, 3, 5, 5\].*\[4, 2, 3, 3\]"):
        T.nnet.conv2d(x, T.tensor4("w", shape=(4, 2, 3, 3)))
    with pytest.raises(ValueError, match="larger than the padded input.*length 5"):
        T.nnet.conv2d(x, T.tensor4("w", shape=(4, 3, 6, 3)))
    # "full" padding makes the same kernel fit
    assert T.nnet.conv2d(x, T.tensor4("w", shape=(4, 3, 6, 3)), border_mode="full").type.shape == (None, 4, 10, 7)
    with pytest.raises(TypeError, match="4-d"):
        T.nnet.conv2d(T.matrix("m"), T.tensor4("w"))
    with pytest.raises(ValueError, match="border_mode"):
        T.nnet.conv2d(x, T.tensor4("w"), border_mode="same")
    with pytest.raises(ValueError, match="input_shape"):
        T.nnet.conv2d(x, T.tensor4("w"), input_shape=(None, 4, 5, 5))
    with pytest.raises(ValueError, match="does not match"):
        T.nnet.conv2d(x, T.tensor4("w", shape=(4, 3, 3, 3)), filter_shape=(4, 3, 2, 2))


def test_conv2d_run_time_channel_mismatch_names_shapes():
    x, w = T.tensor4("x"), T.tensor4("w")
    f = mg.function([x, w], T.nnet.conv2d(x, w), mode="python")
    with pytest.raises(ValueError, match=r"3 channels.*\(2, 3, 5, 5\).*\(4, 2, 3, 3\)"):
        f(np.zeros((2, 3, 5, 5), "float32"), np.zeros((4, 2, 3, 3), "float32"))


def test_conv2d_ops_are_values_and_print():
    a = Conv2d("half", (1, 1), True, (1, 1))
    assert a == Conv2d("half", (1, 1), True, (1, 1)) and hash(a) == hash(Conv2d("half", (1, 1), True, (1, 1)))
    assert str(Conv2d((1, 2), (2, 2), False, (1, 1))) == "conv2d{pad=(1, 2), stride=(2, 2), no_flip}"


# --- pool_2d -----------------------------------------------------------------------------

POOL_CASES = [
    # (input shape, ws, ignore_border, stride, pad)
    ((2, 3, 6, 6), (2, 2), True, None, (0, 0)),
    ((1, 2, 7, 5), (2, 2), False, None, (0, 0)),
    ((1, 2, 7, 6), (3, 2), True, (2, 1), (0, 0)),
    ((2, 1, 5, 7), (3, 3), False, (1, 2), (0, 0)),
    ((1, 2, 5, 6), (3, 3), True, (2, 2), (1, 2)),
    ((3, 5, 5), (2, 3), True, (1, 1), (0, 0)),
]


@pytest.mark.parametrize("pool_mode", ["max", "average_inc_pad", "average_exc_pad"])
@pytest.mark.parametrize("case", POOL_CASES)
def test_pool_2d_forward_matches_loops(mode, rng, case, pool_mode):
    xs, ws, ib, st, pad = case
    x = T.tensor("float64", (None,) * len(xs), "x")
    out = T.signal.pool.pool_2d(x, ws, ignore_border=ib, stride=st, pad=pad, mode=pool_mode)
    xv = rng.standard_normal(xs)
    got = mg.function([x], out, mode=mode)(xv)
    np.testing.assert_allclose(got, pool_loops(xv, ws, ib, st or ws, pad, pool_mode), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("pool_mode", ["max", "average_inc_pad", "average_exc_pad"])
def test_pool_2d_gradients_match_finite_differences(mode, rng, pool_mode):
    for xs, ws, ib, st, pad in (POOL_CASES[1], POOL_CASES[4]):
        xv = rng.standard_normal(xs)
        mg.verify_grad(lambda x: T.signal.pool.pool_2d(x, ws, ignore_border=ib, stride=st, pad=pad,
                                                       mode=pool_mode), [xv], rng=rng, mode=mode)


@pytest.mark.parametrize("pool_mode", ["max", "average_exc_pad"])
def test_pool_2d_second_order(mode, rng, pool_mode):
    def fn(x):
        c = T.sum(T.sqr(T.signal.pool.pool_2d(x, (2, 2), stride=(1, 1), mode=pool_mode)))
        return T.sum(T.sqr(mg.grad(c, x)) * x)

    mg.verify_grad(fn, [rng.standard_normal((1, 2, 4, 5))], rng=rng, mode=mode)


def test_pool_2d_static_shape_and_errors():
    x = T.tensor4("x", shape=(None, 3, 7, 5))
    assert T.signal.pool.pool_2d(x, (2, 2)).type.shape == (None, 3, 3, 2)
    assert T.signal.pool.pool_2d(x, (2, 2), ignore_border=False).type.shape == (None, 3, 4, 3)
    assert T.signal.pool.pool_2d(x, (3, 3), stride=(1, 2), pad=(1, 1)).type.shape == (None, 3, 7, 3)
    with pytest.raises(ValueError, match=r"window \(6, 6\) is larger.*\[7, 5\]"):
        T.signal.pool.pool_2d(x, (6, 6))
    with pytest.raises(ValueError, match="mode"):
        T.signal.pool.pool_2d(x, mode="median")
    with pytest.raises(ValueError, match="ignore_border"):
        T.signal.pool.pool_2d(x, (2, 2), ignore_border=False, pad=(1, 1))
    with pytest.raises(TypeError, match="at least 2"):
        T.signal.pool.pool_2d(T.vector("v"))


def test_conv_then_pool_trains_a_filter(mode, rng):
    """A small end-to-end use: gradient steps on a conv + relu + pool regression reduce the loss."""
    x, y = T.tensor4("x"), T.matrix("y")
    w = mg.shared((0.1 * rng.standard_normal((2, 1, 3, 3))).astype("float32"), name="w")
    h = T.signal.pool.pool_2d(T.nnet.relu(T.nnet.conv2d(x, w, border_mode="half")), (2, 2))
    pred = T.sum(h, axis=(2, 3))
    cost = T.mean(T.sqr(pred - y))
    train = mg.function([x, y], cost, updates=[(w, w - 0.01 * mg.grad(cost, w))], mode=mode)
    xv = rng.standard_normal((8, 1, 6, 6)).astype("float32")
    yv = np.stack([xv.clip(0).sum(axis=(1, 2, 3)) / 4, np.zeros(8)], axis=1).astype("float32")
    losses = [float(train(xv, yv)) for _ in range(30)]
    assert losses[-1] < 0.5 * losses[0]


def test_parallel_loops_agree_with_the_reference(mode, rng, monkeypatch):
    """The numba lowerings' parallel loop variants (used above a work threshold, lowered to 0
    here) for conv2d, pooling and their first and second order gradients."""
    if mode == "numba":
        import minigraph.backends.numba.conv as numba_conv

        monkeypatch.setattr(numba_conv, "PARALLEL_THRESHOLD", 0)
    x, w = T.tensor4("x", "float64"), T.tensor4("w", "float64")
    h = T.nnet.conv2d(x, w, border_mode="half", subsample=(1, 2))
    p_max = T.signal.pool.pool_2d(h, (3, 3), stride=(2, 2), pad=(1, 1))
    p_avg = T.signal.pool.pool_2d(h, (2, 2), ignore_border=False, mode="average_exc_pad")
    cost = T.sum(T.sqr(p_max)) + T.sum(p_avg * p_avg * p_avg)
    outs = [p_max, p_avg] + mg.grad(cost, [x, w])
    second = mg.grad(T.sum(T.sqr(mg.grad(cost, x))), w)  # through the gradient ops' gradients
    xv, wv = rng.standard_normal((3, 4, 9, 10)), rng.standard_normal((5, 4, 3, 3))
    got = mg.function([x, w], outs + [second], mode=mode)(xv, wv)
    want = mg.function([x, w], outs + [second], mode="python")(xv, wv)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)


# --- layers and the seed CNN --------------------------------------------------------------

def test_spatial_batch_norm_in_a_cnn_keeps_running_statistics_per_channel(rng):
    """After one training step of the seed CNN, each BN's running mean/var hold one value per
    channel: 0.9 * old + 0.1 * the batch statistic over (batch, rows, cols) of that channel."""
    from minigraph.nn.sequential import seed_cnn

    model = seed_cnn(filters=4, seed=0)
    bn1 = model.layers[1]
    assert bn1.axes == "spatial" and bn1.inner.running_mean.get_value().shape == (4,)
    x = T.matrix("x")
    acts = mg.function([x], model.layers[0](T.reshape(x, (x.shape[0], 1, 8, 8))), mode="python")
    xv = rng.uniform(size=(16, 64)).astype("float32")
    yv = rng.integers(0, 10, 16).astype("int32")
    a = acts(xv).astype("float64")  # conv1 + relu with the weights before the step
    model.compile(lr=0.1, mode="python").train_step(xv, yv)
    m = a.shape[0] * a.shape[2] * a.shape[3]
    np.testing.assert_allclose(bn1.inner.running_mean.get_value(), 0.1 * a.mean(axis=(0, 2, 3)), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(bn1.inner.running_var.get_value(),
                               0.9 + 0.1 * a.var(axis=(0, 2, 3)) * m / (m - 1), rtol=1e-4, atol=1e-6)
    assert not np.allclose(model.layers[3].inner.running_mean.get_value(), 0)  # bn2 moved too


@pytest.mark.parametrize("pool", ["max", "average_exc_pad"])
def test_cnn_training_steps_agree_between_backends(mode, rng, pool):
    """A few training steps of a small conv / BN / pool net: the losses and weights on each
    backend match the reference interpreter's."""
    from minigraph.nn.sequential import BatchNormalization, Conv2D, Dense, Flatten, Sequential

    def run(m):
        model = Sequential([Conv2D(3, (3, 3), padding="same", activation="relu", input_shape=(2, 7, 7)),
                            BatchNormalization(), Conv2D(4, (2, 2), strides=(2, 1)), BatchNormalization(),
                            Flatten(), Dense(3, activation="softmax")], seed=5)
        x, y = T.matrix("x"), T.ivector("y")
        h = T.signal.pool.pool_2d(T.reshape(x, (x.shape[0], 2, 6, 6)), (2, 2), stride=(1, 1), pad=(1, 1),
                                  mode=pool)
        cost = T.mean(model.nll(T.flatten(h, 2), y))
        updates = [(p, p - 0.1 * g) for p, g in zip(model.params, mg.grad(cost, model.params))] + model.updates
        step = mg.function([x, y], cost, updates=updates, mode=m)
        data = np.random.default_rng(0)
        losses = [float(step(data.normal(size=(8, 72)).astype("float32"), data.integers(0, 3, 8).astype("int32")))
                  for _ in range(3)]
        return losses, [p.get_value() for p in model.params + model.state]

    ref_losses, ref_params = run("python")
    losses, params = run(mode)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-4)
    for a, b in zip(params, ref_params):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


def test_seed_cnn_learns_digits():
    """The seed's CNN, 2 epochs on the 8x8 digits: above 90% test accuracy."""
    from minigraph.datasets import load_digits
    from minigraph.nn.sequential import seed_cnn

    d = load_digits()
    model = seed_cnn(seed=0)
    model.compile(lr=0.05, optimizer="momentum", mode="python")
    history = model.fit(d.x_train, d.y_train, d.x_test, d.y_test, epochs=2, batch_size=32, progress=False)
    assert history.epochs[-1].test_accuracy > 0.90
    folded = model.compile_inference(mode="python", output="classes")
    assert np.mean(folded(d.x_test) == d.y_test) == pytest.approx(history.epochs[-1].test_accuracy, abs=0.003)


def test_cli_train_cnn(tmp_path, capsys):
    """``minigraph train --model cnn --quick``: trains, folds, writes history.json."""
    import json

    from minigraph.cli import main

    argv = ["train", "--model", "cnn", "--quick", "--mode", "python", "--no-progress", "--out", str(tmp_path)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "fold_batch_norm_forward x2" in text
    record = json.loads((tmp_path / "history.json").read_text())
    assert record["inference"]["folds"] == {"fold_batch_norm_forward": 2}
    assert record["inference"]["accuracy_folded"] == pytest.approx(record["inference"]["accuracy"], abs=0.005)
    assert len(record["history"]["epochs"]) == 2
