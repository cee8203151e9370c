"""BLAS's general matrix update as a graph op, made by the rewrites (``rewriting/blas.py``).

``gemm(z, alpha, x, y, beta) = beta * z + alpha * dot(x, y)`` for matrices ``z``, ``x``, ``y``
and scalars ``alpha``, ``beta``.  An SGD step ``W - lr * dot(h.T, g)`` becomes
``gemm(W, -lr, h.T, g, 1)``, which BLAS computes in the product's own pass over ``W``: the
product is never written out and read back.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from minigraph.graph.basic import Apply, Op
from minigraph.graph.type import TensorType
from minigraph.tensor.basic import as_tensor_variable, build_error


@dataclass(frozen=True)
class Gemm(Op):
    """``beta * z + alpha * dot(x, y)``; ``z`` has the product's shape (it is not broadcast).

    ``inplace`` is ``((0, 0),)`` when the output overwrites ``z``'s buffer (the in-place
    rewrite sets it; the reference interpreter ignores it), in the form ``Elemwise`` uses.
    """

    inplace: tuple = ()

    def __str__(self) -> str:
        return "gemm" + ("{inplace}" if self.inplace else "")

    def make_node(self, z, alpha, x, y, beta) -> Apply:
        z, alpha, x, y, beta = (as_tensor_variable(v) for v in (z, alpha, x, y, beta))
        inputs = [z, alpha, x, y, beta]
        if (z.ndim, alpha.ndim, x.ndim, y.ndim, beta.ndim) != (2, 0, 2, 2, 0):
            raise build_error(self, inputs, "takes matrices z, x, y and scalars alpha, beta", TypeError)
        dtype = z.dtype
        if np.dtype(dtype).kind != "f" or any(v.dtype != dtype for v in inputs):
            raise build_error(self, inputs, "needs one float dtype for all its inputs", TypeError)
        k1, k2 = x.type.shape[1], y.type.shape[0]
        if k1 is not None and k2 is not None and k1 != k2:
            raise build_error(self, inputs, f"inner lengths differ: {x.type} . {y.type} ({k1} != {k2})")
        shape = []
        for zs, ps in zip(z.type.shape, (x.type.shape[0], y.type.shape[1])):
            if zs is not None and ps is not None and zs != ps:
                raise build_error(self, inputs, f"z is {z.type}, the product {x.type} . {y.type} has another shape")
            shape.append(zs if zs is not None else ps)
        return Apply(self, inputs, [TensorType(dtype, tuple(shape))])

    def perform(self, node, inputs):
        z, alpha, x, y, beta = inputs
        check_shapes(z, x, y)
        return (np.asarray(beta * z + alpha * np.dot(x, y), dtype=node.outputs[0].dtype),)

    def grad(self, inputs, outputs, output_grads):
        from minigraph.tensor import math as M

        z, alpha, x, y, beta = inputs
        (g,) = output_grads
        return [M.mul(beta, g), M.sum(M.mul(g, M.dot(x, y))), M.mul(alpha, M.dot(g, y.T)),
                M.mul(alpha, M.dot(x.T, g)), M.sum(M.mul(g, z))]


def check_shapes(z, x, y):
    """The run-time check of ``gemm``'s shapes (shared with the numba backend)."""
    if x.shape[1] != y.shape[0] or z.shape != (x.shape[0], y.shape[1]):
        raise ValueError(f"gemm: z of shape {z.shape} does not match the product of {x.shape} and {y.shape}")


def gemm(z, alpha, x, y, beta):
    """``beta * z + alpha * dot(x, y)`` (the rewrites make it; also usable directly)."""
    return Gemm()(z, alpha, x, y, beta)
