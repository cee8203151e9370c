"""``T.nnet``: softmax, activations, cross-entropies and batch normalization (``T.nnet.bn``)."""
from minigraph.tensor.nnet.basic import (LogSoftmax, Softmax, binary_crossentropy, categorical_crossentropy,
                                         log_softmax, relu, sigmoid, softmax, softplus, tanh)

__all__ = ["LogSoftmax", "Softmax", "binary_crossentropy", "categorical_crossentropy", "log_softmax", "relu",
           "sigmoid", "softmax", "softplus", "tanh"]
