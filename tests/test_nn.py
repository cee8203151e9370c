"""minigraph.nn: layers against numpy, dropout, optimizers, the seed MLP's structure, inference
with running statistics, and the two training quality bars on digits."""

import numpy as np
import pytest

import minigraph as mg
import minigraph.tensor as T
from minigraph import nn
from minigraph.datasets import load_digits


@pytest.fixture(scope="module")
def digits():
    return load_digits()


@pytest.fixture(autouse=True)
def one_blas_thread():
    """Small matrix products gain nothing from BLAS threads, and on a shared 2-core runner
    (pytest -n 2) the threads of two workers fight: the training tests ran 10x slower."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


def test_dense_matches_numpy(mode, rng):
    layer = nn.Dense(5, 3, rng=0, name="d")
    layer.b.set_value(rng.standard_normal(3).astype("float32"))
    x = T.matrix("x")
    f = mg.function([x], layer(x), mode=mode)
    xv = rng.standard_normal((4, 5)).astype("float32")
    np.testing.assert_allclose(f(xv), xv @ layer.W.get_value() + layer.b.get_value(), rtol=1e-5, atol=1e-6)
    assert [p.name for p in layer.params] == ["d.W", "d.b"]


def test_dense_glorot_uniform_and_no_bias():
    layer = nn.Dense(300, 100, bias=False, rng=1)
    w = layer.W.get_value()
    limit = np.sqrt(6 / 400)
    assert w.dtype == np.float32 and np.abs(w).max() <= limit and np.abs(w).max() > 0.95 * limit
    assert abs(w.var() - limit ** 2 / 3) < 0.05 * limit ** 2  # the variance of U(-a, a)
    assert layer.b is None and layer.params == [layer.W]
    np.testing.assert_array_equal(w, nn.Dense(300, 100, bias=False, rng=1).W.get_value())  # seeded
    with pytest.raises(ValueError, match="unknown init 'zeros'"):
        nn.Dense(2, 2, init="zeros")


def test_dropout_training_and_inference(mode):
    drop = nn.Dropout(0.25, seed=7)
    x = T.matrix("x")
    train = mg.function([x], drop(x, training=True), mode=mode)
    infer = mg.function([x], drop(x, training=False), mode=mode)
    ones = np.ones((200, 50), dtype="float32")
    a, b = train(ones), train(ones)
    assert set(np.unique(a)) <= {0.0, np.float32(1 / 0.75)}
    assert abs((a == 0).mean() - 0.25) < 0.02  # about a quarter dropped
    assert abs(a.mean() - 1.0) < 0.03  # inverted dropout keeps the expectation
    assert not np.array_equal(a, b)  # the stream advances between calls
    np.testing.assert_array_equal(infer(ones), ones)
    again = mg.function([x], nn.Dropout(0.25, seed=7)(x), mode=mode)
    np.testing.assert_array_equal(again(ones), a)  # same seed, same masks
    with pytest.raises(ValueError, match="rate must lie in"):
        nn.Dropout(1.0)


def test_activation_names():
    with pytest.raises(ValueError, match="unknown activation 'gelu'.*tanh"):
        nn.Activation("gelu")
    x = T.vector("x")
    f = mg.function([x], [nn.Activation(k)(x) for k in ("tanh", "relu", "sigmoid", "linear")], mode="python")
    v = np.array([-2.0, 0.5], dtype="float32")
    out = f(v)
    np.testing.assert_allclose(out[0], np.tanh(v), rtol=1e-6)
    np.testing.assert_allclose(out[1], np.maximum(v, 0))
    np.testing.assert_allclose(out[2], 1 / (1 + np.exp(-v)), rtol=1e-6)
    np.testing.assert_allclose(out[3], v)


def test_sgd_and_momentum_updates(mode):
    # cost = 0.5 * sum((w - t)^2): gradient w - t
    t = np.array([1.0, -2.0, 3.0], dtype="float32")
    for opt in ("sgd", "momentum"):
        w = mg.shared(np.zeros(3, dtype="float32"), name="w")
        cost = 0.5 * T.sum((w - t) ** 2)
        updates = nn.sgd(cost, [w], lr=0.1) if opt == "sgd" else nn.momentum(cost, [w], lr=0.1, momentum=0.9)
        step = mg.function([], cost, updates=updates, mode=mode)
        wv, v = np.zeros(3), np.zeros(3)
        for _ in range(3):
            step()
            g = wv - t
            if opt == "sgd":
                wv = wv - 0.1 * g
            else:
                v = 0.9 * v - 0.1 * g
                wv = wv + v
        np.testing.assert_allclose(w.get_value(), wv, rtol=1e-5, err_msg=opt)
    with pytest.raises(ValueError, match="2 gradients for 1 parameters"):
        nn.sgd(None, [w], grads=[w, w])


def test_seed_mlp_structure():
    m = nn.MLP()
    dense = [layer for layer in m.layers if isinstance(layer, nn.Dense)]
    assert len(dense) == 11 and dense[0].W.get_value().shape == (784, 784)
    assert dense[-1].W.get_value().shape == (784, 10)
    assert all(d.b is None for d in dense[:-1]) and dense[-1].b is not None  # no bias before batch norm
    assert sum(isinstance(layer, nn.BatchNorm) for layer in m.layers) == 10
    assert [d.rate for d in m.layers if isinstance(d, nn.Dropout)] == [0.1] + [0.5] * 9
    assert all(a.kind == "tanh" for a in m.layers if isinstance(a, nn.Activation))
    plain = nn.MLP(n_in=64, n_layers=2, units=8, batch_norm=False, dropout=0)
    assert [type(layer).__name__ for layer in plain.layers] == ["Dense", "Activation", "Dense", "Activation", "Dense"]
    assert all(d.b is not None for d in plain.layers if isinstance(d, nn.Dense))
    with pytest.raises(ValueError, match="3 rates for 2 hidden layers"):
        nn.MLP(n_layers=2, dropout=(0.1, 0.2, 0.3))


def test_inference_uses_running_statistics(mode, digits):
    model = nn.MLP(n_in=64, n_layers=1, units=32, dropout=0.2, seed=3)  # one layer keeps numba's compile short
    trainer = nn.Trainer(model, lr=0.05, mode=mode)
    before = [s.get_value() for s in model.state]
    trainer.fit(digits.x_train[:400], digits.y_train[:400], digits.x_test, digits.y_test, epochs=1,
                batch_size=50, progress=False)
    # training moved the running averages away from their initial 0 / 1
    assert all(not np.allclose(b, s.get_value()) for b, s in zip(before, model.state))
    batch = digits.x_test[:40]
    full = trainer.predict(batch)
    np.testing.assert_array_equal(full, trainer.predict(batch))  # same batch twice
    np.testing.assert_array_equal(full, trainer.predict(batch, batch_size=1))  # one example at a time
    np.testing.assert_array_equal(full[::-1], trainer.predict(batch[::-1]))  # order does not matter
    # the inference graph has no random draw and no batch statistics
    names = {type(n.op).__name__ for n in trainer.predict_batch.fgraph.toposort()}
    assert "RandomVariable" not in names and "BatchNormTrain" not in names


def test_history_records(digits):
    model = nn.MLP(n_in=64, n_layers=1, units=16, dropout=0, seed=0)
    trainer = nn.Trainer(model, lr=0.1, mode="python")
    h = trainer.fit(digits.x_train, digits.y_train, digits.x_test, digits.y_test, epochs=2, batch_size=100,
                    progress=False)
    per_epoch = len(digits.x_train) // 100
    assert h.steps == 2 * per_epoch and [e.steps for e in h.epochs] == [per_epoch, per_epoch]
    assert h.epochs[0].train_loss == pytest.approx(np.mean(h.step_loss[:per_epoch]))
    loss, acc = trainer.evaluate(digits.x_test, digits.y_test)
    assert h.epochs[-1].test_loss == pytest.approx(loss) and h.epochs[-1].test_accuracy == acc
    d = h.to_dict()
    assert set(d) >= {"step_loss", "epochs", "compile_time", "steps_per_second"}
    assert set(d["epochs"][0]) == {"epoch", "steps", "train_loss", "test_loss", "test_accuracy", "wall_time"}
    h2 = nn.Trainer(model, lr=0.1, mode="python").fit(digits.x_train, digits.y_train, digits.x_test, digits.y_test,
                                                      epochs=5, max_steps=20, progress=False)
    assert h2.steps == 20


def test_bn_mlp_reaches_90_percent_on_digits_in_3_epochs(digits):
    model = nn.MLP(n_in=64, n_layers=3, units=128, activation="tanh", dropout=0, seed=0)
    trainer = nn.Trainer(model, lr=0.1, mode="python")
    h = trainer.fit(digits.x_train, digits.y_train, digits.x_test, digits.y_test, epochs=3, batch_size=32,
                    progress=False)
    assert len(h.epochs) == 3
    assert h.epochs[-1].test_accuracy >= 0.90, h.column("test_accuracy")


@pytest.mark.parametrize("units", [392, pytest.param(784, marks=pytest.mark.slow)])
def test_seed_configuration_bn_trains_faster_than_plain(digits, units):
    """The seed's configuration (10 tanh layers, dropout 0.1/0.5, SGD lr 0.01, batch 100) on
    digits: after 200 steps the BN variant's training loss (the mean of steps 181-200) is lower
    than the plain variant's, from the same seed.  The seed's 784 units take about 4x longer
    than 392 (about 45 s on an idle core in python mode), so they run only with -m slow."""
    losses = {}
    for bn in (True, False):
        model = nn.MLP(n_in=64, n_classes=10, units=units, batch_norm=bn, seed=0)
        trainer = nn.Trainer(model, lr=0.01, mode="python")
        h = trainer.fit(digits.x_train, digits.y_train, digits.x_test, digits.y_test, epochs=100, max_steps=200,
                        batch_size=100, seed=0, progress=False)
        assert h.steps == 200
        losses[bn] = float(np.mean(h.step_loss[-20:]))
    assert losses[True] < losses[False] - 0.1, losses
