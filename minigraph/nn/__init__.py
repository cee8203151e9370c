"""``minigraph.nn``: layers that build symbolic graphs (dense, batch normalization, dropout,
activations), the seed notes' MLP, optimizers that produce ``updates``, and a training loop."""
from minigraph.nn.batchnorm import BatchNormalizationLayer
from minigraph.nn.layers import ACTIVATIONS, Activation, BatchNorm, Dense, Dropout, Layer, glorot_uniform
from minigraph.nn.model import MLP
from minigraph.nn.optimizers import OPTIMIZERS, momentum, sgd
from minigraph.nn.training import EpochRecord, History, Trainer, fit, minibatches
from minigraph.nn.conv import Conv2D, Flatten, MaxPooling2D  # noqa: E402,F401  (Keras-style conv layers)
from minigraph.nn.sequential import BatchNormalization, Sequential  # noqa: E402,F401
from minigraph.nn.inference import compile_inference  # noqa: E402,F401  (frozen parameters, batch norm folded)

__all__ = ["BatchNormalizationLayer", "ACTIVATIONS", "Activation", "BatchNorm", "Dense", "Dropout", "Layer", "glorot_uniform", "MLP",
           "OPTIMIZERS", "momentum", "sgd", "EpochRecord", "History", "Trainer", "fit", "minibatches", "Conv2D",
           "Flatten", "MaxPooling2D", "BatchNormalization", "Sequential", "compile_inference"]
