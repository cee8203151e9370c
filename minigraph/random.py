"""Random numbers in graphs: ``RandomStreams(seed)`` with ``uniform``, ``normal`` and
``binomial`` (dropout masks).  Each stream's generator is a shared variable whose default
update advances it, so every call of a compiled function draws new numbers and the state
can be saved and restored exactly."""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from minigraph.compile.shared import SharedVariable
from minigraph.config import config
from minigraph.graph.basic import Apply, Op
from minigraph.graph.type import TensorType
from minigraph.tensor.basic import as_tensor_variable
from minigraph.tensor.shape_ops import as_shape_vector


@dataclass(frozen=True)
class GeneratorType:
    """The type of a numpy random ``Generator`` held in the graph."""

    def make_variable(self, name=None):
        """A fresh variable holding a generator."""
        from minigraph.graph.basic import Variable

        return Variable(self, name=name)

    def __str__(self):
        return "rng"


class RandomGeneratorSharedVariable(SharedVariable):
    """A shared numpy Generator."""

    def get_value(self, borrow=False):
        """The generator (a copy unless ``borrow``)."""
        return self._value if borrow else copy.deepcopy(self._value)

    def set_value(self, value, borrow=False):
        """Store a numpy Generator (copied unless ``borrow``)."""
        if not isinstance(value, np.random.Generator):
            raise ValueError(f"shared variable {self.name!r}: expected a numpy Generator, got {type(value).__name__}")
        self._value = value if borrow else copy.deepcopy(value)


@dataclass(frozen=True)
class RandomVariable(Op):
    """Draw from ``distribution`` with the given shape; outputs the advanced generator and the sample."""

    distribution: str
    dtype: str

    def __str__(self):
        return f"random_{self.distribution}{{{self.dtype}}}"

    def make_node(self, rng, size, *params) -> Apply:
        size_vec, static = as_shape_vector(self, size)
        params = [as_tensor_variable(p) for p in params]
        return Apply(self, [rng, size_vec, *params], [GeneratorType(), TensorType(self.dtype, static)])

    def perform(self, node, inputs):
        rng, size, *params = inputs
        rng = copy.deepcopy(rng)
        shape = tuple(int(s) for s in size)
        if self.distribution == "uniform":
            low, high = params
            sample = rng.uniform(low, high, size=shape)
        elif self.distribution == "normal":
            avg, std = params
            sample = rng.normal(avg, std, size=shape)
        elif self.distribution == "binomial":
            n, p = params
            sample = rng.binomial(n, p, size=shape)
        else:
            raise ValueError(f"unknown distribution {self.distribution!r}")
        return rng, np.asarray(sample).astype(self.dtype)

    def grad(self, inputs, outputs, output_grads):
        return [None] * len(inputs)


class RandomStreams:
    """A source of random variables; ``seed`` makes every stream reproducible."""

    def __init__(self, seed=None):
        self.seed = seed
        self._seeds = np.random.SeedSequence(seed)
        self.state_updates: list[RandomGeneratorSharedVariable] = []

    def _draw(self, distribution, size, params, dtype):
        child = self._seeds.spawn(1)[0]
        rng = RandomGeneratorSharedVariable(GeneratorType(), np.random.default_rng(child),
                                            name=f"rng{len(self.state_updates)}")
        new_rng, sample = RandomVariable(distribution, str(np.dtype(dtype)))(rng, size, *params)
        rng.default_update = new_rng
        self.state_updates.append(rng)
        return sample

    def uniform(self, size, low=0.0, high=1.0, dtype=None):
        """Uniform samples in [low, high)."""
        return self._draw("uniform", size, (low, high), dtype or config.floatX)

    def normal(self, size, avg=0.0, std=1.0, dtype=None):
        """Normal samples with mean ``avg`` and standard deviation ``std``."""
        return self._draw("normal", size, (avg, std), dtype or config.floatX)

    def binomial(self, size, n=1, p=0.5, dtype="int64"):
        """Binomial samples (``n=1``: Bernoulli masks for dropout)."""
        return self._draw("binomial", size, (n, p), dtype)
