"""Folding inference batch norm into neighbouring dense / conv2d layers: the rewrite fires and is
logged, no batch norm is left, and the outputs match the unfolded inference function."""
import numpy as np
import pytest

import minigraph as mg
import minigraph.tensor as T
from minigraph.nn.inference import compile_inference, freeze
from minigraph.nn.sequential import (Activation, BatchNormalization, Conv2D, Dense, Flatten,
                                     Sequential, seed_cnn)
from minigraph.rewriting.bn_folding import find_batch_norms


def randomize_bn(model, rng, positive_gamma=True):
    """Give every batch norm non-trivial running statistics and parameters (as after training)."""
    for layer in model.layers:
        if isinstance(layer, BatchNormalization):
            n = layer.inner.n_features
            gamma = rng.uniform(0.5, 2.0, n) * (1 if positive_gamma else rng.choice([-1, 1], n))
            layer.inner.gamma.set_value(gamma.astype("float32"))
            layer.inner.beta.set_value(rng.normal(size=n).astype("float32"))
            layer.inner.running_mean.set_value(rng.normal(size=n).astype("float32"))
            layer.inner.running_var.set_value(rng.uniform(0.3, 3.0, n).astype("float32"))
        for p in layer.params:
            if p.name.endswith(".b"):
                p.set_value(rng.normal(size=p.get_value().shape).astype("float32"))


def graphs(model, input_ndim=2):
    """(frozen inference output, its input) without any rewrite."""
    x = T.tensor(None, (None,) * input_ndim, name="x")
    (out,) = freeze([model(x, training=False)])
    return x, out


def bn_left(model, pipeline):
    """How many batch norms the graph still has after ``pipeline`` (``"fold_bn"``: folding only)."""
    x, out = graphs(model)
    f = mg.function([x], out, mode="python", rewrites=pipeline)
    return len(find_batch_norms(f.fgraph)), f


def dense_model():
    return Sequential([Dense(12, input_shape=(6,)), BatchNormalization(), Activation("tanh"),
                       Dense(8, use_bias=False), BatchNormalization(), Activation("relu"),
                       Dense(4, activation="softmax")], seed=3)


def conv_model(padding="valid"):
    return Sequential([Conv2D(4, (3, 3), padding=padding, input_shape=(2, 7, 7)), BatchNormalization(),
                       Activation("relu"), Conv2D(3, (2, 2), strides=(2, 2), use_bias=False), BatchNormalization(),
                       Flatten(), Dense(5, activation="softmax")], seed=4)


@pytest.mark.parametrize("build, n_features, n_bn", [(dense_model, 6, 2), (conv_model, 2 * 7 * 7, 2)])
def test_fold_into_previous_layer(mode, rng, build, n_features, n_bn):
    model = build()
    randomize_bn(model, rng, positive_gamma=False)
    assert bn_left(model, None)[0] == n_bn
    assert bn_left(model, "fold_bn")[0] == 0  # folding alone removes every batch norm
    plain = compile_inference(model, fold_batch_norm=False, mode=mode)
    folded = compile_inference(model, mode=mode)
    assert folded.rewrite_log.counts().get("fold_batch_norm") == n_bn
    assert "fold_batch_norm" not in plain.rewrite_log.counts()
    assert any(str(e).startswith("fold_batch_norm: ") for e in folded.rewrite_log)
    x = rng.normal(size=(9, n_features)).astype("float32")
    np.testing.assert_allclose(folded(x), plain(x), rtol=1e-5, atol=1e-6)


def test_folded_weights_follow_the_formula(rng):
    """W' = W * gamma * invstd per output channel, b' = (b - mean) * gamma * invstd + beta."""
    model = Sequential([Dense(3, input_shape=(4,)), BatchNormalization(epsilon=1e-3)], seed=0)
    randomize_bn(model, rng)
    x, out = graphs(model)
    f = mg.function([x], out, mode="python", rewrites="fold_bn")
    dense, bn = model.layers[0].inner, model.layers[1].inner
    invstd = 1 / np.sqrt(bn.running_var.get_value() + 1e-3)
    s = bn.gamma.get_value() * invstd
    want_w = dense.W.get_value() * s
    want_b = (dense.b.get_value() - bn.running_mean.get_value()) * s + bn.beta.get_value()
    consts = [v.data for v in mg.graph.basic.graph_inputs(f.fgraph.outputs) if isinstance(v, mg.graph.basic.Constant)]
    assert any(c.shape == want_w.shape and np.allclose(c, want_w, rtol=1e-6) for c in consts)
    assert any(c.size == want_b.size and np.allclose(c.ravel(), want_b, rtol=1e-6, atol=1e-7) for c in consts)


def test_fold_into_next_layer_in_the_seed_cnn(mode, rng):
    """The seed's CNN puts batch norm after relu: it folds into conv2 (no padding) and, through
    the max pooling (every scale > 0) and the flatten, into the output dense layer."""
    model = seed_cnn(seed=1)
    randomize_bn(model, rng)
    assert bn_left(model, "fold_bn")[0] == 0
    plain = compile_inference(model, fold_batch_norm=False, mode=mode)
    folded = compile_inference(model, mode=mode)
    assert folded.rewrite_log.counts().get("fold_batch_norm_forward") == 2
    x = rng.uniform(size=(6, 64)).astype("float32")
    np.testing.assert_allclose(folded(x), plain(x), rtol=1e-5, atol=1e-6)


def test_no_fold_where_it_would_be_wrong(rng):
    """A negative scale does not commute with max pooling; zero padding breaks x * s + t."""
    model = seed_cnn(seed=1)
    randomize_bn(model, rng)
    bn2 = model.layers[3].inner
    gamma = bn2.gamma.get_value()
    gamma[0] = -1.0
    bn2.gamma.set_value(gamma)
    assert bn_left(model, "fold_bn")[0] == 1  # bn1 folds into conv2, bn2 stays
    padded = Sequential([Conv2D(3, (3, 3), activation="relu", input_shape=(1, 6, 6)), BatchNormalization(),
                         Conv2D(2, (3, 3), padding="same"), Flatten(), Dense(2, activation="softmax")], seed=0)
    randomize_bn(padded, rng)
    assert bn_left(padded, "fold_bn")[0] == 1
    for m, n_in in ((model, 64), (padded, 36)):
        x = rng.uniform(size=(5, n_in)).astype("float32")
        np.testing.assert_allclose(compile_inference(m, mode="python")(x),
                                   compile_inference(m, fold_batch_norm=False, mode="python")(x), rtol=1e-5, atol=1e-6)


def test_fold_on_shared_parameters_stays_live(rng):
    """Without freezing, the folded weights are graphs on the shared variables: later changes count."""
    model = dense_model()
    randomize_bn(model, rng)
    x = T.matrix("x")
    out = model(x, training=False)
    folded = mg.function([x], out, mode="python", rewrites="fast_run_fold_bn")
    plain = mg.function([x], out, mode="python")
    assert folded.rewrite_log.counts().get("fold_batch_norm") == 2
    xv = rng.normal(size=(4, 6)).astype("float32")
    randomize_bn(model, rng)
    np.testing.assert_allclose(folded(xv), plain(xv), rtol=1e-5, atol=1e-6)


def test_compile_inference_folds_the_seed_mlp():
    """compile_inference works for the seed MLP too (dense -> BN -> tanh: folds into the dense)."""
    from minigraph.nn import MLP

    model = MLP(n_in=10, n_classes=3, n_layers=2, units=8, dropout=0.1)
    f = compile_inference(model, mode="python", output="classes")
    assert f.rewrite_log.counts().get("fold_batch_norm") == 2
    assert f(np.zeros((2, 10), "float32")).shape == (2,)
