"""The MLP of the seed notes: input -> (Dense -> BatchNorm -> tanh -> Dropout) x 10 -> softmax."""
from __future__ import annotations

import numpy as np

import minigraph.tensor as T
from minigraph.nn.layers import Activation, BatchNorm, Dense, Dropout, Layer
from minigraph.random import RandomStreams


def _dropout_rates(dropout, n_layers: int) -> list[float]:
    """One rate per hidden layer: a number applies to all, a pair (first, rest) follows the seed."""
    if dropout is None:
        return [0.0] * n_layers
    if isinstance(dropout, (int, float)):
        return [float(dropout)] * n_layers
    rates = [float(r) for r in dropout]
    if len(rates) <= 1:  # () means none; (r,) the same rate everywhere
        return (rates or [0.0]) * n_layers
    if len(rates) == 2 and n_layers != 2:
        return ([rates[0]] + [rates[1]] * (n_layers - 1))[:n_layers]
    if len(rates) != n_layers:
        raise ValueError(f"MLP: dropout gives {len(rates)} rates for {n_layers} hidden layers "
                         f"(give one number, a pair (first, rest), or one per layer)")
    return rates


class LayerStack:
    """Layers applied in order, with the shared variables of all of them."""

    layers: list

    @property
    def params(self) -> list:
        """The trained shared variables, layer by layer."""
        return [p for layer in self.layers for p in layer.params]

    @property
    def state(self) -> list:
        """Shared variables updated by training but not by the optimizer (running statistics)."""
        return [s for layer in self.layers for s in layer.state]

    @property
    def updates(self) -> list:
        """The running-average updates of the last training-mode graph."""
        return [u for layer in self.layers for u in getattr(layer, "updates", [])]


class MLP(LayerStack):
    """A multi-layer perceptron classifier; the defaults are the seed notes' configuration.

    ``n_layers`` hidden layers of ``units`` units, each Dense -> BatchNorm (when
    ``batch_norm``) -> activation -> Dropout; then a Dense output layer and softmax over
    ``n_classes``.  ``dropout=(0.1, 0.5)`` means 0.1 after the first hidden layer and 0.5 after
    the others.  The hidden Dense layers get no bias when followed by batch norm (its beta
    makes a bias redundant), unless ``bias`` says otherwise."""

    def __init__(self, n_in: int = 784, n_classes: int = 10, n_layers: int = 10, units: int = 784,
                 activation: str = "tanh", batch_norm: bool = True, dropout=(0.1, 0.5), seed: int | None = 0,
                 init="glorot_uniform", bias: bool | None = None, bn_epsilon: float = 1e-5,
                 bn_momentum: float = 0.1):
        self.config = dict(n_in=n_in, n_classes=n_classes, n_layers=n_layers, units=units, activation=activation,
                           batch_norm=batch_norm, dropout=dropout, seed=seed, bias=bias)
        rng = np.random.default_rng(seed)
        self.streams = RandomStreams(None if seed is None else seed + 1)
        hidden_bias = (not batch_norm) if bias is None else bias
        self.layers: list[Layer] = []
        width = n_in
        for i, rate in enumerate(_dropout_rates(dropout, n_layers), start=1):
            self.layers.append(Dense(width, units, bias=hidden_bias, init=init, rng=rng, name=f"dense{i}"))
            if batch_norm:
                self.layers.append(BatchNorm(units, epsilon=bn_epsilon, momentum=bn_momentum, name=f"bn{i}"))
            self.layers.append(Activation(activation, name=f"{activation}{i}"))
            if rate > 0:
                self.layers.append(Dropout(rate, streams=self.streams, name=f"dropout{i}"))
            width = units
        self.layers.append(Dense(width, n_classes, bias=True, init=init, rng=rng, name="output"))

    def logits(self, x, training: bool = True):
        """The output layer's pre-softmax values."""
        h = x
        for layer in self.layers:
            h = layer(h, training=training)
        return h

    def __call__(self, x, training: bool = True):
        """Class probabilities (softmax over the last axis)."""
        return T.nnet.softmax(self.logits(x, training))

    def nll(self, x, y, training: bool = True):
        """Per-example negative log likelihood of the integer labels ``y``."""
        logp = T.nnet.log_softmax(self.logits(x, training))
        return -logp[T.arange(y.shape[0]), y]

    def __repr__(self) -> str:
        c = self.config
        rates = [layer.rate for layer in self.layers if isinstance(layer, Dropout)]
        block = " -> ".join(["dense " + str(c["units"])] + (["bn"] if c["batch_norm"] else []) + [c["activation"]]
                            + (["dropout"] if rates else []))
        drop = f", dropout {rates[0]:g}" + (f" then {rates[1]:g}" if len(set(rates)) > 1 else "") if rates else ""
        return f"MLP({c['n_in']} -> ({block}) x {c['n_layers']} -> dense {c['n_classes']} -> softmax{drop})"
