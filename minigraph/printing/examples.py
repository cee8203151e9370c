"""The canonical graphs the inspection tools, the docs and the tests look at: one batch-norm
layer, its raw gradient, and its compiled training step.

The training step takes the layer's input ``x`` and the gradient ``dy`` arriving from the
layers above, returns the layer's output ``y`` and ``dx`` (the gradient handed to the layer
below), and updates gamma and beta (SGD) and the running statistics: the forward and
backward pass of one batch-norm layer, nothing else.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: the seed notes' epsilon
EPSILON = 1e-5


@dataclass
class BNExample:
    """The graphs of one batch-norm layer."""

    shape: tuple
    axes: tuple
    x: object
    dy: object
    gamma: object
    beta: object
    running_mean: object
    running_var: object
    y: object          # forward output
    mean: object       # batch statistics (outputs of the batch-norm node)
    invstd: object
    grads: list        # raw gradient graph: [dx, dgamma, dbeta]
    updates: list      # (shared, new value) pairs of the training step
    lr: float

    @property
    def forward(self) -> list:
        """The forward graph's outputs: y, mean, invstd."""
        return [self.y, self.mean, self.invstd]

    def compile(self, mode=None, rewrites="fast_run", profile=False):
        """The training step ``f(x, dy) -> [y, dx]`` with its updates."""
        import minigraph as mg

        return mg.function([self.x, self.dy], [self.y, self.grads[0]], updates=self.updates, mode=mode,
                           rewrites=rewrites, profile=profile, name="bn_train_step")

    def sample_inputs(self, seed: int = 0) -> list[np.ndarray]:
        """Random x and dy of the example's shape and dtype."""
        rng = np.random.default_rng(seed)
        return [rng.standard_normal(self.shape).astype(self.x.dtype),
                rng.standard_normal(self.shape).astype(self.dy.dtype)]


def parse_axes(axes, ndim: int) -> tuple:
    """"per-activation", "spatial", or a comma-separated list / tuple of ints."""
    if isinstance(axes, str) and axes not in ("per-activation", "spatial"):
        try:
            axes = tuple(int(a) for a in axes.split(",") if a.strip())
        except ValueError:
            raise ValueError(f"axes must be 'per-activation', 'spatial' or integers such as 0,2,3; got {axes!r}") from None
    from minigraph.tensor.nnet.bn import _normalize_axes

    return _normalize_axes(axes, ndim)


def bn_example(shape=(100, 784), axes="per-activation", dtype: str = "float32", lr: float = 0.01,
               static: bool = True, impl: str = "autodiff") -> BNExample:
    """Build one batch-norm layer on an input of ``shape`` normalized over ``axes``.

    ``static``: the input types carry the static shape (lengths print in listings and byte
    counts need no example inputs); otherwise every length is known only at run time.
    """
    import minigraph as mg
    import minigraph.tensor as T
    from minigraph.tensor.nnet import bn

    shape = tuple(int(s) for s in shape)
    if len(shape) < 2 or any(s < 1 for s in shape):
        raise ValueError(f"bn_example: shape must have at least 2 positive lengths, got {shape}")
    axes = parse_axes(axes, len(shape))
    kept = tuple(s for d, s in enumerate(shape) if d not in axes)
    sym_shape = shape if static else (None,) * len(shape)
    x = T.tensor(dtype, sym_shape, name="x")
    dy = T.tensor(dtype, sym_shape, name="dy")
    gamma = mg.shared(np.ones(kept, dtype=dtype), name="gamma")
    beta = mg.shared(np.zeros(kept, dtype=dtype), name="beta")
    running_mean = mg.shared(np.zeros(kept, dtype=dtype), name="running_mean")
    running_var = mg.shared(np.ones(kept, dtype=dtype), name="running_var")
    y, mean, invstd, new_mean, new_var = bn.batch_normalization_train(
        x, gamma, beta, axes=axes, epsilon=EPSILON, running_mean=running_mean, running_var=running_var, impl=impl)
    y.name, mean.name, invstd.name = "y", "mean", "invstd"
    # the cost whose gradient with respect to y is dy: how a layer sees the layers above it
    cost = T.sum(y * dy)
    grads = mg.grad(cost, [x, gamma, beta])
    for g, n in zip(grads, ("dx", "dgamma", "dbeta")):
        g.name = n
    updates = [(gamma, gamma - lr * grads[1]), (beta, beta - lr * grads[2]),
               (running_mean, new_mean), (running_var, new_var)]
    return BNExample(shape, axes, x, dy, gamma, beta, running_mean, running_var, y, mean, invstd, list(grads),
                     updates, lr)
