"""Neural-network ops: softmax, log-softmax, activations and cross-entropies."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from minigraph.graph.basic import Apply, Op
from minigraph.graph.type import TensorType
from minigraph.tensor import math as M
from minigraph.tensor.basic import as_tensor_variable, build_error
from minigraph.tensor.shape_ops import arange, shape_i
from minigraph.tensor.subtensor import getitem


def _check_float(op, x):
    if np.dtype(x.dtype).kind != "f":
        raise build_error(op, [x], f"expects a float tensor, got {x.type}", TypeError)


@dataclass(frozen=True)
class Softmax(Op):
    """exp(x) / sum(exp(x)) along ``axis`` (the max is subtracted first, so it never overflows)."""

    axis: int = -1

    def __str__(self):
        return "softmax" if self.axis == -1 else f"softmax{{axis={self.axis}}}"

    def make_node(self, x) -> Apply:
        x = as_tensor_variable(x)
        _check_float(self, x)
        if x.ndim == 0 or not -x.ndim <= self.axis < x.ndim:
            raise build_error(self, [x], f"axis {self.axis} out of range")
        return Apply(self, [x], [x.type])

    def perform(self, node, inputs):
        x = inputs[0]
        e = np.exp(x - np.max(x, axis=self.axis, keepdims=True))
        return (e / np.sum(e, axis=self.axis, keepdims=True),)

    def grad(self, inputs, outputs, output_grads):
        (sm,), (g,) = outputs, output_grads
        return [M.mul(M.sub(g, M.sum(M.mul(g, sm), axis=self.axis, keepdims=True)), sm)]


@dataclass(frozen=True)
class LogSoftmax(Op):
    """x - logsumexp(x) along ``axis``, stable for large logits."""

    axis: int = -1

    def __str__(self):
        return "log_softmax" if self.axis == -1 else f"log_softmax{{axis={self.axis}}}"

    def make_node(self, x) -> Apply:
        x = as_tensor_variable(x)
        _check_float(self, x)
        if x.ndim == 0 or not -x.ndim <= self.axis < x.ndim:
            raise build_error(self, [x], f"axis {self.axis} out of range")
        return Apply(self, [x], [x.type])

    def perform(self, node, inputs):
        x = inputs[0]
        shifted = x - np.max(x, axis=self.axis, keepdims=True)
        return (shifted - np.log(np.sum(np.exp(shifted), axis=self.axis, keepdims=True)),)

    def grad(self, inputs, outputs, output_grads):
        (lsm,), (g,) = outputs, output_grads
        return [M.sub(g, M.mul(M.exp(lsm), M.sum(g, axis=self.axis, keepdims=True)))]


def softmax(x, axis=-1):
    """Softmax along ``axis`` (the last by default)."""
    x = as_tensor_variable(x)
    return Softmax(axis % x.ndim - x.ndim if x.ndim else axis)(x)


def log_softmax(x, axis=-1):
    """Logarithm of the softmax along ``axis``, computed stably."""
    x = as_tensor_variable(x)
    return LogSoftmax(axis % x.ndim - x.ndim if x.ndim else axis)(x)


sigmoid = M.sigmoid
softplus = M.softplus
tanh = M.tanh


def relu(x, alpha=0):
    """max(x, 0), or a leaky version with slope ``alpha`` below 0."""
    x = as_tensor_variable(x)
    if alpha == 0:
        return M.maximum(x, 0)
    return M.switch(M.gt(x, 0), x, M.mul(x, alpha))


def categorical_crossentropy(coding_dist, true_dist):
    """-log(coding_dist) at the true class (``true_dist`` as integer labels), or
    -sum(true_dist * log(coding_dist)) per row (``true_dist`` as a distribution)."""
    coding_dist = as_tensor_variable(coding_dist)
    true_dist = as_tensor_variable(true_dist)
    if np.dtype(true_dist.dtype).kind in "iu":
        if true_dist.ndim != coding_dist.ndim - 1:
            raise ValueError(f"categorical_crossentropy: labels {true_dist.type} do not fit predictions {coding_dist.type}")
        rows = arange(shape_i(coding_dist, 0))
        return M.neg(M.log(getitem(coding_dist, (rows, true_dist))))
    return M.neg(M.sum(M.mul(true_dist, M.log(coding_dist)), axis=-1))


def binary_crossentropy(output, target):
    """-(target * log(output) + (1 - target) * log(1 - output))."""
    return M.neg(M.add(M.mul(target, M.log(output)), M.mul(M.sub(1, target), M.log(M.sub(1, output)))))


@dataclass(frozen=True)
class SoftmaxCrossEntropy(Op):
    """``-log_softmax(x)[arange(n), y]``: the negative log-likelihood of integer labels ``y``
    under a softmax over the rows of ``x``, computed stably (logsumexp with the max
    subtracted).  The rewrites build it from the unfused graph; its gradient is
    ``g[:, None] * (softmax(x) - onehot(y))``."""

    def make_node(self, x, y) -> Apply:
        x, y = as_tensor_variable(x), as_tensor_variable(y)
        _check_float(self, x)
        if x.ndim != 2 or y.ndim != 1 or np.dtype(y.dtype).kind not in "iu":
            raise build_error(self, [x, y], "expects a matrix of logits and a vector of integer labels", TypeError)
        n = x.type.shape[0] if x.type.shape[0] is not None else y.type.shape[0]
        return Apply(self, [x, y], [TensorType(x.dtype, (n,))])

    def perform(self, node, inputs):
        x, y = inputs
        # negative labels count from the end, as in the indexing graph this op replaces
        if x.shape[0] != y.shape[0] or (y.size and (y.min() < -x.shape[1] or y.max() >= x.shape[1])):
            raise IndexError(f"{self}: labels of shape {y.shape} (range [{y.min() if y.size else 0}, "
                             f"{y.max() if y.size else 0}]) do not fit logits of shape {x.shape}")
        m = np.max(x, axis=1, keepdims=True)
        lse = m[:, 0] + np.log(np.sum(np.exp(x - m), axis=1))
        return (np.asarray(lse - x[np.arange(x.shape[0]), y], dtype=node.outputs[0].dtype),)

    def grad(self, inputs, outputs, output_grads):
        from minigraph.tensor.basic import constant
        from minigraph.tensor.shape_ops import dimshuffle
        from minigraph.tensor.subtensor import ADV, AdvancedIncSubtensor

        x, y = inputs
        (g,) = output_grads
        rows = arange(shape_i(x, 0))
        # softmax(x) - onehot(y), then scaled row by row
        diff = AdvancedIncSubtensor((ADV, ADV))(softmax(x), constant(-1, dtype=x.dtype), rows, y)
        return [M.mul(dimshuffle(g, (0, "x")), diff), None]
