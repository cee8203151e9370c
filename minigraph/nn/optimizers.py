"""Optimizers: functions from a cost (or its gradients) and the parameters to ``updates``, the
(shared variable, new value) pairs that ``mg.function`` applies after every call."""
from __future__ import annotations

import numpy as np

from minigraph.compile.shared import shared
from minigraph.gradient import grad


def _grads(cost, params, grads):
    if grads is None:
        return grad(cost, params)
    if len(grads) != len(params):
        raise ValueError(f"optimizer: {len(grads)} gradients for {len(params)} parameters")
    return list(grads)


def sgd(cost, params, lr=0.01, grads=None) -> list:
    """Plain stochastic gradient descent: p <- p - lr * dcost/dp."""
    return [(p, p - lr * g) for p, g in zip(params, _grads(cost, params, grads))]


def momentum(cost, params, lr=0.01, momentum=0.9, nesterov=False, grads=None) -> list:
    """SGD with (optionally Nesterov) momentum: v <- momentum * v - lr * g; p <- p + v
    (Nesterov: p <- p + momentum * v - lr * g).  The velocities are new shared variables."""
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum: the coefficient must lie in [0, 1), got {momentum}")
    updates = []
    for p, g in zip(params, _grads(cost, params, grads)):
        v = shared(np.zeros_like(p.get_value(borrow=True)), name=f"{p.name or 'param'}.velocity")
        v_new = momentum * v - lr * g
        step = momentum * v_new - lr * g if nesterov else v_new
        updates += [(v, v_new), (p, p + step)]
    return updates


OPTIMIZERS = {"sgd": sgd, "momentum": momentum}
