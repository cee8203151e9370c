"""The README's first graph: a softmax classifier trains and its loss falls."""
import numpy as np

import minigraph as mg
import minigraph.tensor as T


def test_softmax_classifier_loss_falls(rng, mode):
    x, y = T.matrix("x"), T.ivector("y")
    W = mg.shared(np.zeros((5, 3), dtype="float32"), name="W")
    p = T.nnet.softmax(T.dot(x, W))
    cost = -T.mean(T.log(p)[T.arange(y.shape[0]), y])
    train = mg.function([x, y], cost, updates=[(W, W - 0.5 * mg.grad(cost, W))], mode=mode)
    xs = rng.standard_normal((32, 5)).astype("float32")
    ys = np.argmax(xs[:, :3], axis=1).astype("int32")
    losses = [float(train(xs, ys)) for _ in range(10)]
    assert losses[-1] < losses[0] * 0.7
    assert W.get_value().dtype == np.float32
