"""Build, train and evaluate an MLP with batch normalization, written out by hand.

    python examples/mlp_bn.py            # scikit-learn's digits, a few seconds

The graph is built twice from the same layers: once for training (batch statistics, dropout)
and once for inference (running statistics, no dropout).  Both read the same shared weights.
"""
import numpy as np

import minigraph as mg
import minigraph.tensor as T
from minigraph import nn
from minigraph.datasets import load_digits

data = load_digits()
rng = np.random.default_rng(0)
streams = mg.RandomStreams(1)

# input -> (dense -> batch norm -> tanh -> dropout) x 3 -> dense -> softmax
layers, width = [], data.n_features
for i in range(3):
    layers += [nn.Dense(width, 128, bias=False, rng=rng, name=f"dense{i}"),  # BN's beta replaces the bias
               nn.BatchNorm(128, name=f"bn{i}"),
               nn.Activation("tanh"),
               nn.Dropout(0.1, streams=streams)]
    width = 128
layers.append(nn.Dense(width, data.n_classes, rng=rng, name="output"))


def forward(x, training):
    for layer in layers:
        x = layer(x, training=training)
    return x  # logits


x, y = T.matrix("x"), T.ivector("y")
rows = T.arange(y.shape[0])
cost = -T.mean(T.nnet.log_softmax(forward(x, training=True))[rows, y])
params = [p for layer in layers for p in layer.params]
running = [u for layer in layers for u in layer.updates]  # running mean / variance updates
train = mg.function([x, y], cost, updates=nn.sgd(cost, params, lr=0.1) + running)
predict = mg.function([x], T.argmax(forward(x, training=False), axis=1))

for epoch in range(1, 6):
    losses = []
    for idx in nn.minibatches(len(data.x_train), 32, rng):
        losses.append(float(train(data.x_train[idx], data.y_train[idx])))
    accuracy = np.mean(predict(data.x_test) == data.y_test)
    print(f"epoch {epoch}  train loss {np.mean(losses):.4f}  test accuracy {accuracy:.3f}")

# inference uses the running statistics: one example at a time gives the same answers
one_by_one = np.concatenate([predict(data.x_test[i:i + 1]) for i in range(20)])
assert np.array_equal(one_by_one, predict(data.x_test[:20]))
print("parameters:", ", ".join(f"{p.name}{p.get_value().shape}" for p in params[:3]), "...")
