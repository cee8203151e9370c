"""``T.nnet``: softmax, activations, cross-entropies and batch normalization (``T.nnet.bn``)."""
from minigraph.tensor.nnet.basic import (LogSoftmax, Softmax, binary_crossentropy, categorical_crossentropy,
                                         log_softmax, relu, sigmoid, softmax, softplus, tanh)
from minigraph.tensor.nnet.conv import conv2d  # noqa: F401  (T.nnet.conv2d)
from minigraph.tensor.nnet import bn  # noqa: F401  (T.nnet.bn)

__all__ = ["LogSoftmax", "Softmax", "binary_crossentropy", "categorical_crossentropy", "log_softmax", "relu",
           "sigmoid", "softmax", "softplus", "tanh"]
