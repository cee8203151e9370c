"""Look inside the gradient of a batch-norm layer in a small network.

    python examples/inspect_bn_gradient.py

1. the raw gradient graph that autodiff derives for dcost/dx (before any rewrite), with the
   batch statistics (mean, inverse std) marked: the backward pass reaches x through them;
2. the autodiff gradient against the paper's closed-form gradient, and against finite
   differences in float64;
3. what the rewrites did to the compiled training step, and the graph that runs.
"""
import numpy as np

import minigraph as mg
import minigraph.tensor as T
from minigraph import nn
from minigraph.printing import is_statistic, listing

rng = np.random.default_rng(0)
xv = rng.normal(2.0, 3.0, (8, 5))
yv = rng.integers(0, 3, 8).astype("int32")


def network(impl, dtype="float64"):
    """x -> dense -> batch norm -> tanh -> dense -> log softmax; returns (x, y, cost, layers)."""
    dense1 = nn.Dense(5, 4, bias=False, rng=1, name="dense1", dtype=dtype)
    bn = nn.BatchNorm(4, name="bn", dtype=dtype, impl=impl)
    out = nn.Dense(4, 3, rng=2, name="out", dtype=dtype)
    x, y = T.matrix("x", dtype=dtype), T.ivector("y")
    logits = out(T.tanh(bn(dense1(x))))
    cost = -T.mean(T.nnet.log_softmax(logits)[T.arange(y.shape[0]), y])
    return x, y, cost, (dense1, bn, out)


# 1. the raw gradient graph
x, y, cost, (dense1, bn, out) = network("autodiff")
dx = mg.grad(cost, x)
dx.name = "dx"
print("== raw gradient graph of dcost/dx (batch statistics marked) ==")
print(listing(dx, mark=is_statistic))

# 2. autodiff == closed form == finite differences
values = {}
for impl in ("autodiff", "closed_form"):
    x, y, cost, layers = network(impl)
    params = [p for layer in layers for p in layer.params]
    values[impl] = mg.function([x, y], mg.grad(cost, [x] + params), mode="python")(xv, yv)
for a, c in zip(values["autodiff"], values["closed_form"]):
    np.testing.assert_allclose(a, c, rtol=1e-10, atol=1e-12)
print("\nautodiff and closed-form gradients agree "
      f"(largest |dx| {np.abs(values['autodiff'][0]).max():.3e})")


def cost_of(x_sym):
    layers_x = network("autodiff")[3]
    h = layers_x[2](T.tanh(layers_x[1](layers_x[0](x_sym))))
    return -T.mean(T.nnet.log_softmax(h)[T.arange(8), T.constant(yv)])


mg.verify_grad(cost_of, [xv], rng=np.random.default_rng(1))
print("finite differences agree (mg.verify_grad, float64)")

# 3. the compiled training step
x, y, cost, layers = network("autodiff", dtype="float32")
params = [p for layer in layers for p in layer.params]
step = mg.function([x, y], cost, updates=nn.sgd(cost, params, lr=0.1) + layers[1].updates, mode="python")
print("\n== rewrites of the training step ==")
print(step.rewrite_log.summary() if step.rewrite_log is not None else "(no rewrite pipeline)")
print("\n== the graph that runs ==")
print(listing(step))
