"""A Keras-like ``Sequential([...])`` model over minigraph's layers.

The seed notes' two Keras models read, line for line::

    from minigraph.nn.sequential import (BatchNormalization, Conv2D, Dense, Dropout, Flatten,
                                         MaxPooling2D, Sequential)

    mlp = Sequential([Dense(784, activation="tanh", input_shape=(784,)), BatchNormalization(),
                      Dropout(0.1), ..., Dense(10, activation="softmax")])
    cnn = Sequential([
        Conv2D(32, (3, 3), activation="relu", input_shape=(1, 8, 8)),
        BatchNormalization(),
        Conv2D(32, (3, 3), activation="relu"),
        BatchNormalization(),
        MaxPooling2D(pool_size=(2, 2)),
        Flatten(),
        Dense(10, activation="softmax"),
    ])
    cnn.compile(lr=0.05, optimizer="momentum")
    cnn.fit(x_train, y_train, x_test, y_test, epochs=2)
    predict = cnn.compile_inference()      # parameters frozen, batch norm folded away

Layers here are built lazily from the static shape of their input (Keras' convention), so
``Dense`` takes only its width; ``BatchNormalization`` normalizes per activation after a
dense layer and per channel ("spatial", axes (0, 2, 3)) after a convolution.  Inputs may
come flattened: a (N, 64) matrix is reshaped to (N,) + ``input_shape``, so the model plugs
into :class:`minigraph.nn.Trainer` (which compiles the train and inference functions) as the
MLP does.  The last layer's softmax is kept out of ``logits`` so the loss is computed stably.
"""
from __future__ import annotations

import numpy as np

import minigraph.tensor as T
from minigraph.graph.type import format_shape
from minigraph.nn.conv import Conv2D, Flatten, LazyLayer, MaxPooling2D, activation_fn
from minigraph.nn import layers as L
from minigraph.nn.model import LayerStack
from minigraph.random import RandomStreams


class Dense(LazyLayer):
    """Keras' Dense: ``activation(x @ W + b)`` with ``units`` outputs; the input width comes
    from the first input (wraps :class:`minigraph.nn.Dense`)."""

    def __init__(self, units: int, activation=None, use_bias: bool = True, input_shape=None, input_dim=None,
                 name: str | None = None):
        if input_dim is not None:
            input_shape = (input_dim,)
        super().__init__(name or "dense", input_shape)
        self.units = int(units)
        self.activation = activation
        self.act = activation_fn(activation)
        self.use_bias = use_bias
        self.inner = None

    def _build(self, shape):
        if len(shape) != 2 or shape[1] is None:
            raise ValueError(f"{self.name}: expects (batch, features) input with a known width, got "
                             f"{format_shape(shape)}; add Flatten() before it")
        self.inner = L.Dense(shape[1], self.units, bias=self.use_bias, rng=self.rng, name=self.name, dtype=self.dtype)
        self.params = self.inner.params

    @property
    def W(self):
        return self.inner.W

    @property
    def b(self):
        return self.inner.b

    def linear(self, x):
        """x @ W + b, before the activation."""
        self._ensure_built(x)
        return self.inner(x)

    def __call__(self, x, training: bool = True):
        return self.act(self.linear(x))


class BatchNormalization(LazyLayer):
    """Batch normalization over the batch (after a dense layer: (N, D) input) or over batch and
    space per channel (after a convolution: (N, C, H, W) input), chosen from the input's rank.

    ``epsilon`` defaults to the seed notes' 1e-5; ``momentum`` is the weight of each new batch
    in the running averages (Theano's ``running_average_factor``; Keras' 0.99 is 0.01 here)."""

    def __init__(self, epsilon: float = 1e-5, momentum: float = 0.1, input_shape=None, name: str | None = None):
        super().__init__(name or "batch_normalization", input_shape)
        self.epsilon, self.momentum = float(epsilon), float(momentum)
        self.inner = None

    def _build(self, shape):
        if len(shape) not in (2, 4) or shape[1] is None:
            raise ValueError(f"{self.name}: expects (N, D) or (N, C, H, W) input with a known axis 1, got {shape}")
        axes = "per-activation" if len(shape) == 2 else "spatial"
        self.inner = L.BatchNorm(shape[1], epsilon=self.epsilon, momentum=self.momentum, name=self.name,
                                 dtype=self.dtype, axes=axes)
        self.params, self.state = self.inner.params, self.inner.state

    @property
    def axes(self) -> str:
        return self.inner.axes

    def __call__(self, x, training: bool = True):
        self._ensure_built(x)
        out = self.inner(x, training=training)
        self.updates = self.inner.updates if training else []
        return out


class Dropout(LazyLayer):
    """Inverted dropout with probability ``rate`` (the identity at inference)."""

    def __init__(self, rate: float, input_shape=None, name: str | None = None):
        super().__init__(name or "dropout", input_shape)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"Dropout: rate must lie in [0, 1), got {rate}")
        self.rate = float(rate)
        self.inner = None

    def bind(self, streams: RandomStreams) -> None:
        """Use the model's random streams (so a seeded model is reproducible)."""
        self.inner = L.Dropout(self.rate, streams=streams, name=self.name)

    def __call__(self, x, training: bool = True):
        if self.inner is None:
            self.bind(RandomStreams(None))
        return self.inner(x, training=training)


class Activation(LazyLayer):
    """An activation as its own layer (Keras' ``Activation("relu")``)."""

    def __init__(self, activation, input_shape=None, name: str | None = None):
        super().__init__(name or str(activation), input_shape)
        self.activation = activation
        self.act = activation_fn(activation)

    def __call__(self, x, training: bool = True):
        return self.act(x)


class Sequential(LayerStack):
    """A stack of layers applied in order; a classifier when the last layer ends in softmax.

    ``input_shape``: the shape of one example (e.g. ``(1, 8, 8)``), or given on the first layer
    as in Keras.  Weights are created at construction (from ``seed``), so ``params`` exist
    before any graph is built."""

    def __init__(self, layers=(), input_shape=None, seed: int | None = 0, dtype: str | None = None):
        self.layers: list = []
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.streams = RandomStreams(None if seed is None else seed + 1)
        self.dtype = dtype
        self.input_shape = None if input_shape is None else tuple(int(s) for s in input_shape)
        self.trainer = None
        for layer in layers:
            self.add(layer)

    def add(self, layer) -> None:
        """Append a layer (and build it when the input shape is known)."""
        if not self.layers and self.input_shape is None and getattr(layer, "input_shape", None) is not None:
            self.input_shape = layer.input_shape
        if isinstance(layer, Dropout):
            layer.bind(self.streams)
        taken = {other.name for other in self.layers}
        if layer.name in taken and not getattr(layer, "built", False):  # Keras' dense, dense_1, ...
            k = 1
            while f"{layer.name}_{k}" in taken:
                k += 1
            layer.name = f"{layer.name}_{k}"
        self.layers.append(layer)
        self._build()

    def _build(self) -> None:
        """Build every layer by passing a symbolic input of the known shape through the stack."""
        if self.input_shape is None:
            return
        from minigraph.config import config

        dtype = self.dtype or config.floatX
        h = T.tensor(dtype, (None,) + self.input_shape, name="x")
        for layer in self.layers:
            if isinstance(layer, LazyLayer) and not layer.built:
                layer.build(h.type.shape, self.rng, dtype)
            h = layer(h, training=False)
        self.output_type = h.type

    # --- graphs ------------------------------------------------------------------------------------

    def _reshape_input(self, x):
        x = T.as_tensor_variable(x)
        if self.input_shape is not None and x.ndim == 2 and len(self.input_shape) > 1:
            return T.reshape(x, (x.shape[0],) + self.input_shape)
        return x

    def _ends_in_softmax(self) -> bool:
        last = self.layers[-1] if self.layers else None
        return getattr(last, "activation", None) == "softmax"

    def logits(self, x, training: bool = True):
        """The output before the last layer's softmax (the whole output if it has none)."""
        if not self.layers:
            raise ValueError("Sequential: the model has no layers")
        h = self._reshape_input(x)
        for layer in self.layers[:-1]:
            h = layer(h, training=training)
        last = self.layers[-1]
        if self._ends_in_softmax():
            return last.linear(h) if hasattr(last, "linear") else h
        return last(h, training=training)

    def __call__(self, x, training: bool = True):
        """The model's output (class probabilities when it ends in softmax)."""
        out = self.logits(x, training)
        return T.nnet.softmax(out) if self._ends_in_softmax() else out

    def nll(self, x, y, training: bool = True):
        """Per-example negative log likelihood of the integer labels ``y`` (softmax of the logits)."""
        logp = T.nnet.log_softmax(self.logits(x, training))
        return -logp[T.arange(y.shape[0]), y]

    # --- Keras-like workflow ---------------------------------------------------------------------------

    def compile(self, lr: float = 0.01, optimizer: str = "sgd", mode: str | None = None, **opt_kwargs):
        """Compile the train and evaluation functions (a :class:`minigraph.nn.Trainer`); returns it."""
        from minigraph.nn.training import Trainer

        self.trainer = Trainer(self, lr=lr, optimizer=optimizer, mode=mode, **opt_kwargs)
        return self.trainer

    def fit(self, x_train, y_train, x_test, y_test, epochs: int = 1, batch_size: int = 100, **kwargs):
        """Train (after ``compile``) and return the history; see :meth:`minigraph.nn.Trainer.fit`."""
        if self.trainer is None:
            self.compile()
        return self.trainer.fit(x_train, y_train, x_test, y_test, epochs=epochs, batch_size=batch_size, **kwargs)

    def evaluate(self, x, y, batch_size: int = 1000) -> tuple[float, float]:
        """(mean negative log likelihood, accuracy) in inference mode."""
        if self.trainer is None:
            self.compile()
        return self.trainer.evaluate(x, y, batch_size=batch_size)

    def compile_inference(self, fold_batch_norm: bool = True, mode: str | None = None, output: str = "probs"):
        """The inference function with frozen parameters (and batch norm folded away):
        see :func:`minigraph.nn.inference.compile_inference`."""
        from minigraph.nn.inference import compile_inference

        return compile_inference(self, fold_batch_norm=fold_batch_norm, mode=mode, output=output)

    def summary(self) -> str:
        """One line per layer with its output shape and parameter count."""
        lines = []
        if self.input_shape is None:
            return "Sequential(" + ", ".join(layer.name for layer in self.layers) + ") (not built)"
        h = T.tensor(self.dtype, (None,) + self.input_shape)
        total = 0
        for layer in self.layers:
            h = layer(h, training=False)
            n = sum(int(np.prod(p.get_value(borrow=True).shape)) for p in layer.params)
            total += n
            lines.append(f"{layer.name:<22} {format_shape(h.type.shape):<18} {n:>8}")
        return "\n".join(lines + [f"{'total parameters':<41} {total:>8}"])

    def __repr__(self) -> str:
        return "Sequential(" + " -> ".join(layer.name for layer in self.layers) + ")"


def seed_cnn(input_shape=(1, 8, 8), n_classes: int = 10, filters: int = 32, seed: int | None = 0) -> Sequential:
    """The seed notes' Keras CNN: Conv2D 32 3x3 relu -> BN -> Conv2D 32 3x3 relu -> BN ->
    MaxPooling2D -> Flatten -> Dense softmax."""
    return Sequential([
        Conv2D(filters, (3, 3), activation="relu", input_shape=input_shape, name="conv1"),
        BatchNormalization(name="bn1"),
        Conv2D(filters, (3, 3), activation="relu", name="conv2"),
        BatchNormalization(name="bn2"),
        MaxPooling2D(pool_size=(2, 2), name="pool"),
        Flatten(name="flatten"),
        Dense(n_classes, activation="softmax", name="output"),
    ], seed=seed)


__all__ = ["Sequential", "Dense", "BatchNormalization", "Dropout", "Activation", "Conv2D", "MaxPooling2D", "Flatten",
           "seed_cnn"]
