"""Small models trained a few SGD steps: the loss falls and the parameters match a numpy
implementation of the same maths, step by step."""
import numpy as np

import minigraph as mg
import minigraph.tensor as T


def _data(rng, n=24, d=5, k=3):
    x = rng.standard_normal((n, d))
    y = np.argmax(x[:, :k] + 0.3 * rng.standard_normal((n, k)), axis=1)
    return x, y


def _log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def test_softmax_nll_classifier_matches_numpy(mode):
    rng = np.random.default_rng(10)
    xv, yv = _data(rng)
    W0 = 0.1 * rng.standard_normal((5, 3))
    b0 = np.zeros(3)
    lr = 0.5

    x, y = T.dmatrix("x"), T.lvector("y")
    W, b = mg.shared(W0, name="W"), mg.shared(b0, name="b")
    p = T.nnet.softmax(T.dot(x, W) + b)
    cost = -T.mean(T.log(p)[T.arange(y.shape[0]), y])
    gW, gb = mg.grad(cost, [W, b])
    train = mg.function([x, y], cost, updates=[(W, W - lr * gW), (b, b - lr * gb)], mode=mode)

    Wn, bn = W0.copy(), b0.copy()
    n = len(yv)
    losses = []
    for _ in range(8):
        loss = float(train(xv, yv))
        # numpy: the same forward pass and the closed-form softmax + NLL gradient
        logp = _log_softmax(xv @ Wn + bn)
        ref_loss = -np.mean(logp[np.arange(n), yv])
        dz = np.exp(logp)
        dz[np.arange(n), yv] -= 1
        dz /= n
        Wn, bn = Wn - lr * xv.T @ dz, bn - lr * dz.sum(axis=0)
        np.testing.assert_allclose(loss, ref_loss, rtol=1e-10)
        np.testing.assert_allclose(W.get_value(), Wn, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(b.get_value(), bn, rtol=1e-9, atol=1e-12)
        losses.append(loss)
    assert losses[-1] < 0.7 * losses[0]
    assert all(a > b for a, b in zip(losses, losses[1:]))


def test_two_layer_tanh_mlp_matches_numpy(mode):
    rng = np.random.default_rng(11)
    xv, yv = _data(rng, n=20, d=4, k=3)
    params0 = {"W1": 0.5 * rng.standard_normal((4, 6)), "b1": np.zeros(6),
               "W2": 0.5 * rng.standard_normal((6, 3)), "b2": np.zeros(3)}
    lr = 0.2

    x, y = T.dmatrix("x"), T.lvector("y")
    sh = {k: mg.shared(v, name=k) for k, v in params0.items()}
    h = T.tanh(T.dot(x, sh["W1"]) + sh["b1"])
    logp = T.nnet.log_softmax(T.dot(h, sh["W2"]) + sh["b2"])
    cost = -T.mean(logp[T.arange(y.shape[0]), y])
    names = list(sh)
    grads = mg.grad(cost, [sh[k] for k in names])
    train = mg.function([x, y], cost, updates=[(sh[k], sh[k] - lr * g) for k, g in zip(names, grads)], mode=mode)

    p = {k: v.copy() for k, v in params0.items()}
    n = len(yv)
    losses = []
    for _ in range(10):
        loss = float(train(xv, yv))
        hn = np.tanh(xv @ p["W1"] + p["b1"])
        lp = _log_softmax(hn @ p["W2"] + p["b2"])
        ref_loss = -np.mean(lp[np.arange(n), yv])
        dz = np.exp(lp)
        dz[np.arange(n), yv] -= 1
        dz /= n
        dh = dz @ p["W2"].T * (1 - hn ** 2)
        g = {"W2": hn.T @ dz, "b2": dz.sum(0), "W1": xv.T @ dh, "b1": dh.sum(0)}
        p = {k: p[k] - lr * g[k] for k in p}
        np.testing.assert_allclose(loss, ref_loss, rtol=1e-10)
        for k in names:
            np.testing.assert_allclose(sh[k].get_value(), p[k], rtol=1e-9, atol=1e-12, err_msg=k)
        losses.append(loss)
    assert losses[-1] < 0.8 * losses[0]


def test_float32_training_keeps_float32(mode):
    """The DESIGN.md example in floatX: parameters stay float32 and track a float64 reference."""
    rng = np.random.default_rng(12)
    xv, yv = _data(rng, n=16, d=5, k=3)
    W0 = (0.1 * rng.standard_normal((5, 3))).astype("float32")
    x, y = T.matrix("x"), T.ivector("y")
    W = mg.shared(W0, name="W")
    p = T.nnet.softmax(T.dot(x, W))
    cost = -T.mean(T.log(p)[T.arange(y.shape[0]), y])
    train = mg.function([x, y], cost, updates=[(W, W - 0.1 * mg.grad(cost, W))], mode=mode)
    Wn = W0.astype("float64")
    for _ in range(5):
        loss = train(xv.astype("float32"), yv.astype("int32"))
        assert loss.dtype == np.float32
        logp = _log_softmax(xv @ Wn)
        dz = np.exp(logp)
        dz[np.arange(16), yv] -= 1
        Wn = Wn - 0.1 * xv.T @ (dz / 16)
    assert W.get_value().dtype == np.float32
    np.testing.assert_allclose(W.get_value(), Wn, rtol=1e-4, atol=1e-5)
