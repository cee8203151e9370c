"""The seed notes' Theano batch-normalization layer, run on minigraph.

The class below is the notes' ``BatchNormalizationLayer`` exactly as written for Theano;
only the imports changed (``import minigraph as theano``, ``import minigraph.tensor as T``).
It is run on a fully connected shape (batch, 784) and a convolutional shape
(batch, C, H, W), and its output is checked against numpy's evaluation of the paper's
formula.  Run: ``python examples/seed_bn_layer.py`` (exits non-zero on a mismatch).
"""
import numpy as np

import minigraph as theano
import minigraph.tensor as T


# --- the notes' layer, unchanged -------------------------------------------------------------
class BatchNormalizationLayer(object):
    def __init__(self, input, shape=None):
        self.shape = shape
        if len(shape) == 2: # for fully connnected
            gamma = theano.shared(value=np.ones(shape[1], dtype=theano.config.floatX), name="gamma", borrow=True)
            beta = theano.shared(value=np.zeros(shape[1], dtype=theano.config.floatX), name="beta", borrow=True)
            mean = input.mean((0,), keepdims=True)
            var = input.var((0,), keepdims=True)
        elif len(shape) == 4: # for cnn
            gamma = theano.shared(value=np.ones(shape[1:], dtype=theano.config.floatX), name="gamma", borrow=True)
            beta = theano.shared(value=np.zeros(shape[1:], dtype=theano.config.floatX), name="beta", borrow=True)
            mean = input.mean((0,2,3), keepdims=True)
            var = input.var((0,2,3), keepdims=True)
            mean = self.change_shape(mean)
            var = self.change_shape(var)

        self.params = [gamma, beta]
        self.output = gamma * (input - mean) / T.sqrt(var + 1e-5) + beta

    def change_shape(self, vec):
        ret = T.repeat(vec, self.shape[2]*self.shape[3])
        ret = ret.reshape(self.shape[1:])
        return ret
# ----------------------------------------------------------------------------------------------


def numpy_reference(x, gamma, beta, axes):
    """The paper's equations in float64: per-feature mean and biased variance over ``axes``."""
    x = x.astype("float64")
    mu = x.mean(axis=axes, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)
    return gamma * (x - mu) / np.sqrt(var + 1e-5) + beta


def check(shape, rng, mode=None) -> float:
    """Build the layer for ``shape``, run it on random data with random gamma/beta, and
    return the largest difference from numpy (AssertionError if it is too large)."""
    input = T.matrix("input") if len(shape) == 2 else T.tensor4("input")
    layer = BatchNormalizationLayer(input, shape=shape)
    gamma, beta = layer.params
    # non-trivial parameters, so that the broadcasting of gamma (C, H, W) is exercised
    gamma.set_value(rng.uniform(0.5, 1.5, gamma.get_value().shape).astype(theano.config.floatX))
    beta.set_value(rng.standard_normal(beta.get_value().shape).astype(theano.config.floatX))
    f = theano.function([input], layer.output, mode=mode)
    x = (3.0 + 2.0 * rng.standard_normal(shape)).astype(theano.config.floatX)
    got = f(x)
    axes = (0,) if len(shape) == 2 else (0, 2, 3)
    want = numpy_reference(x, gamma.get_value(), beta.get_value(), axes)
    assert got.shape == tuple(shape) and got.dtype == np.dtype(theano.config.floatX), (got.shape, got.dtype)
    err = float(np.max(np.abs(got - want)))
    tol = 1e-4 if theano.config.floatX == "float32" else 1e-10
    assert err < tol, f"shape {shape}: largest difference from numpy {err:.3g} exceeds {tol:g}"
    return err


def main(mode=None) -> None:
    rng = np.random.default_rng(0)
    for shape in [(100, 784), (8, 3, 5, 4)]:
        err = check(shape, rng, mode)
        print(f"shape {shape}: matches numpy (largest difference {err:.2e})")


if __name__ == "__main__":
    main()
