"""Convolutional layers in Keras' spelling: ``Conv2D``, ``MaxPooling2D``, ``Flatten`` (NCHW).

Like Keras layers they are built lazily: the number of input channels (or features) is read
from the static shape of the first input they are called on, so ``Conv2D(32, (3, 3))`` needs
no ``in_channels``.  Build explicitly with ``layer.build(input_shape)`` to create the weights
before any graph is made (``Sequential`` does this for every layer).
"""
from __future__ import annotations

import numpy as np

import minigraph.tensor as T
from minigraph.compile.shared import shared
from minigraph.config import config
from minigraph.graph.type import format_shape
from minigraph.nn.layers import ACTIVATIONS, Layer


def _pair(name: str, value) -> tuple[int, int]:
    v = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(v) != 2 or any(int(a) < 1 for a in v):
        raise ValueError(f"{name} must be a positive int or a pair of them, got {value!r}")
    return (int(v[0]), int(v[1]))


def activation_fn(activation):
    """An activation given by name (or None, or a function) as a function of a tensor."""
    if activation is None:
        return ACTIVATIONS["linear"]
    if callable(activation):
        return activation
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[activation]


class LazyLayer(Layer):
    """A layer whose weights are made from the static shape of its first input."""

    def __init__(self, name=None, input_shape=None):
        super().__init__(name)
        #: the shape of one example (no batch axis), as Keras' ``input_shape=`` on a first layer
        self.input_shape = None if input_shape is None else tuple(int(s) for s in input_shape)
        self.built = False
        self.rng = None
        self.dtype = config.floatX

    def build(self, input_shape, rng=None, dtype=None) -> None:
        """Create the weights for inputs of static shape ``input_shape`` (batch axis included)."""
        if self.built:
            return
        self.rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        self.dtype = dtype or self.dtype
        self._build(tuple(input_shape))
        self.built = True

    def _build(self, shape) -> None:
        pass

    def _ensure_built(self, x) -> None:
        if not self.built:
            self.build(x.type.shape, self.rng, x.dtype)


class Conv2D(LazyLayer):
    """2-D convolution layer: ``activation(conv2d(x, W) + b)`` on NCHW input.

    ``padding``: "valid", "same" (odd kernels: output size = input size / stride, via
    Theano's "half"), "full" or (ph, pw).  Computes cross-correlation like Keras
    (``filter_flip=False``); weights (filters, in_channels, kh, kw) are Glorot-uniform."""

    def __init__(self, filters: int, kernel_size, strides=(1, 1), padding="valid", activation=None,
                 use_bias: bool = True, dilation_rate=(1, 1), input_shape=None, name: str | None = None):
        super().__init__(name or "conv2d", input_shape)
        self.filters = int(filters)
        self.kernel_size = _pair("Conv2D: kernel_size", kernel_size)
        self.strides = _pair("Conv2D: strides", strides)
        self.dilation_rate = _pair("Conv2D: dilation_rate", dilation_rate)
        if padding == "same":
            if any(k % 2 == 0 for k in self.kernel_size):
                raise ValueError(f"Conv2D: padding='same' needs odd kernel sizes, got {self.kernel_size}")
            padding = "half"
        self.border_mode = padding
        self.activation = activation
        self.act = activation_fn(activation)
        self.use_bias = use_bias
        self.W = self.b = None

    def _build(self, shape):
        if len(shape) != 4 or shape[1] is None:
            raise ValueError(f"{self.name}: expects NCHW input with a known channel count, got {format_shape(shape)}")
        c = shape[1]
        kh, kw = self.kernel_size
        fan_in, fan_out = c * kh * kw, self.filters * kh * kw
        a = np.sqrt(6.0 / (fan_in + fan_out))
        w = self.rng.uniform(-a, a, size=(self.filters, c, kh, kw)).astype(self.dtype)
        self.W = shared(w, name=f"{self.name}.W")
        self.params = [self.W]
        if self.use_bias:
            self.b = shared(np.zeros(self.filters, dtype=self.dtype), name=f"{self.name}.b")
            self.params.append(self.b)

    def linear(self, x):
        """The convolution plus bias, before the activation."""
        self._ensure_built(x)
        out = T.nnet.conv2d(x, self.W, border_mode=self.border_mode, subsample=self.strides, filter_flip=False,
                            filter_dilation=self.dilation_rate)
        if self.b is not None:
            out = out + self.b.dimshuffle("x", 0, "x", "x")
        return out

    def __call__(self, x, training: bool = True):
        return self.act(self.linear(x))


class MaxPooling2D(LazyLayer):
    """Max pooling over the last two axes (``pool_2d``); ``padding="same"`` keeps partial windows."""

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", input_shape=None, name: str | None = None):
        super().__init__(name or "max_pooling2d", input_shape)
        if padding not in ("valid", "same"):
            raise ValueError(f"MaxPooling2D: padding must be 'valid' or 'same', got {padding!r}")
        self.pool_size = _pair("MaxPooling2D: pool_size", pool_size)
        self.strides = self.pool_size if strides is None else _pair("MaxPooling2D: strides", strides)
        self.padding = padding

    def __call__(self, x, training: bool = True):
        return T.signal.pool.pool_2d(x, self.pool_size, ignore_border=self.padding == "valid", stride=self.strides,
                                     mode="max")


class Flatten(LazyLayer):
    """(N, ...) -> (N, product of the rest), keeping the static length when it is known."""

    def __init__(self, input_shape=None, name: str | None = None):
        super().__init__(name or "flatten", input_shape)

    def __call__(self, x, training: bool = True):
        rest = x.type.shape[1:]
        if x.ndim <= 2:
            return x
        if None in rest:
            return T.flatten(x, 2)
        return T.reshape(x, (x.shape[0], int(np.prod(rest))))


__all__ = ["Conv2D", "MaxPooling2D", "Flatten", "LazyLayer", "activation_fn"]
