"""The seed notes' batch-normalization layer, on ``T.nnet.bn``, with running averages.

The notes' Theano layer takes a symbolic ``input`` and its ``shape`` ((batch, D) for a fully
connected layer, (batch, C, H, W) for a convolutional one), owns ``gamma`` and ``beta``
(``params``) and exposes ``output``; epsilon is 1e-5.  This version computes the output with
``batch_normalization_train`` (one node whose statistics are graph nodes) and adds what the
notes left out: running averages of the statistics, updated through ``updates``, and the
inference output that uses them.  As Theano users did, the caller picks the mode::

    bn = BatchNormalizationLayer(x, shape=(100, 784))          # training output
    train = mg.function([x, y], cost, updates=sgd + bn.updates)
    bn_eval = BatchNormalizationLayer(x, shape=(100, 784), training=False)   # separate layer, or:
    flag = mg.shared(np.int8(1)); bn = BatchNormalizationLayer(x, (100, 784), training=flag)
    # output = switch(flag, batch statistics, running statistics); set flag to 0 to evaluate

One difference from the notes: for convolutional input, gamma and beta hold one value per
feature map (C,), as in the paper, rather than one per position (C, H, W);
examples/seed_bn_layer.py runs the notes' own class unchanged.
"""
from __future__ import annotations

import numpy as np

from minigraph.compile.shared import shared
from minigraph.config import config
from minigraph.graph.basic import Variable
from minigraph.tensor import math as M
from minigraph.tensor.nnet import bn

__all__ = ["BatchNormalizationLayer"]


class BatchNormalizationLayer:
    """Batch normalization of ``input`` (shape (batch, D) or (batch, C, H, W)): ``output``,
    ``params = [gamma, beta]``, and ``updates`` for the running mean and variance."""

    def __init__(self, input, shape=None, epsilon: float = 1e-5, running_average_factor: float = 0.1,
                 training=True, impl: str = "autodiff", name: str | None = None):
        if shape is None or len(shape) not in (2, 4):
            raise ValueError(f"BatchNormalizationLayer: shape must be (batch, D) or (batch, C, H, W), got {shape!r}")
        if getattr(input, "ndim", None) != len(shape):
            raise ValueError(f"BatchNormalizationLayer: input {input!r} does not have the {len(shape)} dimensions "
                             f"of shape {tuple(shape)}")
        self.shape = tuple(shape)
        self.input = input
        prefix = f"{name}." if name else ""
        n = int(shape[1])
        dtype = config.floatX
        gamma = shared(np.ones(n, dtype=dtype), name=prefix + "gamma", borrow=True)
        beta = shared(np.zeros(n, dtype=dtype), name=prefix + "beta", borrow=True)
        self.running_mean = shared(np.zeros(n, dtype=dtype), name=prefix + "running_mean", borrow=True)
        self.running_var = shared(np.ones(n, dtype=dtype), name=prefix + "running_var", borrow=True)
        self.gamma, self.beta = gamma, beta
        self.params = [gamma, beta]
        axes = "per-activation" if len(shape) == 2 else "spatial"
        self.train_output, self.mean, self.invstd, new_mean, new_var = bn.batch_normalization_train(
            input, gamma, beta, axes=axes, epsilon=epsilon, running_average_factor=running_average_factor,
            running_mean=self.running_mean, running_var=self.running_var, impl=impl)
        self.test_output = bn.batch_normalization_test(input, gamma, beta, self.running_mean, self.running_var,
                                                       axes=axes, epsilon=epsilon)
        #: pass these to mg.function(..., updates=...) of the training function
        self.updates = [(self.running_mean, new_mean), (self.running_var, new_var)]
        if isinstance(training, Variable):
            if training.ndim != 0:
                raise ValueError(f"BatchNormalizationLayer: training must be a bool or a symbolic scalar, "
                                 f"got {training!r} ({training.type})")
            self.output = M.switch(training, self.train_output, self.test_output)
        elif training in (True, False):
            self.output = self.train_output if training else self.test_output
        else:
            raise ValueError(f"BatchNormalizationLayer: training must be a bool or a symbolic scalar, got {training!r}")
