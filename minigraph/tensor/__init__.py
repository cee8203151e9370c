"""The tensor namespace, Theano's names: ``import minigraph.tensor as T``."""
from minigraph.tensor.basic import (as_tensor_variable, constant, matrix, scalar, tensor, tensor3, tensor4,
                                    vector)
from minigraph.tensor.basic import (bmatrix, bscalar, btensor3, btensor4, bvector, dmatrix, dscalar,  # noqa: F401
                                    dtensor3, dtensor4, dvector, fmatrix, fscalar, ftensor3, ftensor4, fvector,
                                    imatrix, iscalar, itensor3, itensor4, ivector, lmatrix, lscalar, ltensor3,
                                    ltensor4, lvector, wmatrix, wscalar, wtensor3, wtensor4, wvector)
from minigraph.tensor.elemwise import DimShuffle, Elemwise
from minigraph.tensor.math import (abs, add, and_, argmax, argmin, cast, ceil, clip, cos, div, divide, dot, eq,  # noqa: A004
                                   exp, expm1, floor, ge, gt, identity, int_div, invert, le, log, log1p, lt,
                                   max, maximum, mean, min, minimum, mod, mul, neg, neq, ones_like, or_, outer,
                                   pow, prod, sgn, sigmoid, sin, softplus, sqr, sqrt, square, std, sub, sum,
                                   switch, tanh, true_div, var, where, zeros_like)
from minigraph.tensor.shape_ops import (alloc, arange, broadcast_to, concatenate, dimshuffle, flatten, repeat, reshape,
                                    shape, shape_padaxis, shape_padleft, shape_padright, specify_shape, stack,
                                    transpose)
from minigraph.tensor.subtensor import inc_subtensor, nonzero, set_subtensor
from minigraph.tensor.variable import TensorConstant, TensorVariable
from minigraph.tensor import nnet  # noqa: E402  (T.nnet.softmax, T.nnet.bn)
from minigraph.tensor import signal  # noqa: E402,F401  (T.signal.pool.pool_2d)


def zeros(shape, dtype=None):
    """An array of zeros of the given shape (ints or symbolic scalars)."""
    from minigraph.config import config

    return alloc(constant(0, dtype=dtype or config.floatX), *_lengths(shape))


def ones(shape, dtype=None):
    """An array of ones of the given shape."""
    from minigraph.config import config

    return alloc(constant(1, dtype=dtype or config.floatX), *_lengths(shape))


def _lengths(shape):
    return (shape,) if not isinstance(shape, (list, tuple)) else tuple(shape)

