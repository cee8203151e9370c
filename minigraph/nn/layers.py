"""Layers that build symbolic graphs.

A layer owns its shared variables (``params``: what the optimizer trains; ``state``: what
training updates otherwise, like running averages) and is called on a symbolic input:
``layer(x, training=True)`` returns the output variable.  The same layer object is called
twice to get the training graph (batch statistics, dropout on) and the inference graph
(population statistics, no dropout); both read the same shared variables.
"""
from __future__ import annotations

import numpy as np

import minigraph.tensor as T
from minigraph.compile.shared import shared
from minigraph.config import config


class Layer:
    """Base class: a callable that maps a symbolic input to a symbolic output."""

    #: shared variables trained by the optimizer
    params: list
    #: other shared variables the training graph updates (running statistics)
    state: list

    def __init__(self, name: str | None = None):
        self.name = name or type(self).__name__.lower()
        self.params = []
        self.state = []
        #: the (shared, new value) pairs the last training-mode call produced
        self.updates = []

    def __call__(self, x, training: bool = True):
        """The symbolic output for the symbolic input ``x``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def glorot_uniform(rng: np.random.Generator, n_in: int, n_out: int, gain: float = 1.0) -> np.ndarray:
    """Weights drawn from U(-a, a) with a = gain * sqrt(6 / (n_in + n_out)) (Glorot & Bengio 2010)."""
    a = gain * np.sqrt(6.0 / (n_in + n_out))
    return rng.uniform(-a, a, size=(n_in, n_out))


def _initializer(init, rng, n_in, n_out):
    if callable(init):
        return np.asarray(init(rng, n_in, n_out))
    if init == "glorot_uniform":
        return glorot_uniform(rng, n_in, n_out)
    if init == "normal":  # the small-normal init many older examples use
        return rng.normal(0.0, 0.01, size=(n_in, n_out))
    raise ValueError(f"Dense: unknown init {init!r}; use 'glorot_uniform', 'normal' or a function (rng, n_in, n_out)")


class Dense(Layer):
    """A fully connected layer ``x @ W (+ b)``; W is Glorot-uniform initialized by default."""

    def __init__(self, n_in: int, n_out: int, bias: bool = True, init="glorot_uniform", rng=None,
                 name: str | None = None, dtype: str | None = None):
        super().__init__(name or "dense")
        dtype = dtype or config.floatX
        rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        self.n_in, self.n_out = int(n_in), int(n_out)
        self.W = shared(_initializer(init, rng, self.n_in, self.n_out).astype(dtype), name=f"{self.name}.W")
        self.params = [self.W]
        self.b = None
        if bias:
            self.b = shared(np.zeros(self.n_out, dtype=dtype), name=f"{self.name}.b")
            self.params.append(self.b)

    def __call__(self, x, training: bool = True):
        out = T.dot(x, self.W)
        return out + self.b if self.b is not None else out


class BatchNorm(Layer):
    """Batch normalization over a (N, D) input (or (N, C, H, W) with ``axes="spatial"``,
    ``n_features`` = C) as a callable layer: batch statistics during
    training, the running (population) averages at inference, which training updates with
    ``momentum``.  (``BatchNormalizationLayer`` is the seed notes' construct-on-input form.)

    Built on ``T.nnet.bn.batch_normalization_train`` / ``batch_normalization_test``;
    ``epsilon`` defaults to the seed notes' 1e-5."""

    def __init__(self, n_features: int, epsilon: float = 1e-5, momentum: float = 0.1, name: str | None = None,
                 dtype: str | None = None, axes="per-activation", impl: str = "autodiff"):
        super().__init__(name or "bn")
        if axes not in ("per-activation", "spatial"):
            raise ValueError(f"BatchNorm: axes must be 'per-activation' ((N, D) input) or 'spatial' ((N, C, H, W) "
                             f"input), got {axes!r}")
        self.axes, self.impl = axes, impl
        dtype = dtype or config.floatX
        self.n_features, self.epsilon, self.momentum = int(n_features), float(epsilon), float(momentum)
        self.gamma = shared(np.ones(self.n_features, dtype=dtype), name=f"{self.name}.gamma")
        self.beta = shared(np.zeros(self.n_features, dtype=dtype), name=f"{self.name}.beta")
        self.running_mean = shared(np.zeros(self.n_features, dtype=dtype), name=f"{self.name}.running_mean")
        self.running_var = shared(np.ones(self.n_features, dtype=dtype), name=f"{self.name}.running_var")
        self.params = [self.gamma, self.beta]
        self.state = [self.running_mean, self.running_var]

    def __call__(self, x, training: bool = True):
        from minigraph.tensor.nnet import bn

        if training:
            out, _mean, _invstd, new_mean, new_var = bn.batch_normalization_train(
                x, self.gamma, self.beta, axes=self.axes, epsilon=self.epsilon, running_average_factor=self.momentum,
                running_mean=self.running_mean, running_var=self.running_var, impl=self.impl)
            self.updates = [(self.running_mean, new_mean), (self.running_var, new_var)]
            return out
        return bn.batch_normalization_test(x, self.gamma, self.beta, self.running_mean, self.running_var,
                                           axes=self.axes, epsilon=self.epsilon)


class Dropout(Layer):
    """Inverted dropout: during training, zero each unit with probability ``rate`` and scale the
    rest by 1 / (1 - rate); at inference, the identity."""

    def __init__(self, rate: float, streams=None, seed: int | None = None, name: str | None = None):
        super().__init__(name or "dropout")
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"Dropout: rate must lie in [0, 1), got {rate}")
        from minigraph.random import RandomStreams

        self.rate = float(rate)
        self.streams = streams if streams is not None else RandomStreams(seed)

    def __call__(self, x, training: bool = True):
        if not training or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        mask = self.streams.binomial(x.shape, n=1, p=keep, dtype=x.dtype)
        return x * mask * (1.0 / keep)


ACTIVATIONS = {
    "tanh": T.tanh,
    "relu": T.nnet.relu,
    "sigmoid": T.sigmoid,
    "linear": lambda x: x,
    "softmax": T.nnet.softmax,
}


class Activation(Layer):
    """An elementwise nonlinearity by name: tanh, relu, sigmoid, linear, or softmax (over rows)."""

    def __init__(self, kind: str = "tanh", name: str | None = None):
        if kind not in ACTIVATIONS:
            raise ValueError(f"Activation: unknown activation {kind!r}; choose one of {', '.join(ACTIVATIONS)}")
        super().__init__(name or kind)
        self.kind = kind

    def __call__(self, x, training: bool = True):
        return ACTIVATIONS[self.kind](x)
