"""Random well-typed graphs for the fuzz tests.

``programs()`` is a hypothesis strategy of ``Program``s: a list of steps in plain data
(inputs with static and run-time shapes, elementwise chains with broadcasting, reductions
over random axes with keepdims, dot, reshape, dimshuffle, concatenation, basic and
integer-array indexing, softmax, log-softmax, the softmax NLL cost, batch normalization).  ``Program.build(dtype)`` makes the graph and its input
values in float32 or float64; ``repr(program)`` is Python code that builds the same graph,
which is what hypothesis prints for a failing example.

Values stay finite and moderate by construction (log, sqrt and division only see arguments
bounded away from 0), so any NaN or mismatch is a bug, not a domain error.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from hypothesis import strategies as st

import minigraph.tensor as T

UNARY = {
    "tanh": lambda x: T.tanh(x),
    "sigmoid": lambda x: T.sigmoid(x),
    "sin": lambda x: T.sin(x),
    "cos": lambda x: T.cos(x),
    "sqr": lambda x: T.sqr(x),
    "neg": lambda x: -x,
    "softplus": lambda x: T.softplus(x),
    "exp_tanh": lambda x: T.exp(T.tanh(x)),
    "log_1p_sqr": lambda x: T.log(1.0 + T.sqr(x)),
    "sqrt_1p_sqr": lambda x: T.sqrt(1.0 + T.sqr(x)),
    "abs": lambda x: abs(x),
    "scale": lambda x: x * 0.5 - 0.25,
    "cube": lambda x: x ** 3,
    "clip": lambda x: T.clip(x, -0.5, 0.7),
    "expm1_tanh": lambda x: T.expm1(T.tanh(x)),
    "log1p_sqr": lambda x: T.log1p(T.sqr(x)),
}
UNARY_CODE = {
    "tanh": "T.tanh({})", "sigmoid": "T.sigmoid({})", "sin": "T.sin({})", "cos": "T.cos({})",
    "sqr": "T.sqr({})", "neg": "-{}", "softplus": "T.softplus({})", "exp_tanh": "T.exp(T.tanh({}))",
    "log_1p_sqr": "T.log(1.0 + T.sqr({}))", "sqrt_1p_sqr": "T.sqrt(1.0 + T.sqr({}))", "abs": "abs({})",
    "scale": "{} * 0.5 - 0.25", "cube": "{} ** 3", "clip": "T.clip({}, -0.5, 0.7)",
    "expm1_tanh": "T.expm1(T.tanh({}))", "log1p_sqr": "T.log1p(T.sqr({}))",
}
#: not differentiable everywhere: graphs using these skip the finite-difference check
KINKED = {"abs", "max", "min", "maximum", "clip", "switch"}

BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / (1.0 + T.sqr(b)),
    "maximum": lambda a, b: T.maximum(a, b),
    "add3": lambda a, b: T.add(a, b, a),
    "switch": lambda a, b: T.switch(a > b, a * b, a - b),
    "center": lambda a, b: a - b.mean(keepdims=True) if b.ndim else a - b,
}
BINARY_CODE = {
    "add": "{} + {}", "sub": "{} - {}", "mul": "{} * {}", "div": "{} / (1.0 + T.sqr({}))",
    "maximum": "T.maximum({}, {})", "add3": "T.add({0}, {1}, {0})",
    "switch": "T.switch({0} > {1}, {0} * {1}, {0} - {1})", "center": "{} - {}.mean(keepdims=True)",
}

REDUCE = ("sum", "mean", "max", "min", "prod", "var")


@dataclass
class Program:
    """A random graph in plain data: ``steps`` build variables ``v0, v1, ...`` in order."""

    steps: list = field(default_factory=list)
    outputs: list = field(default_factory=list)
    seed: int = 0

    def kinked(self) -> bool:
        """True when some op is not differentiable everywhere (finite differences may straddle a kink)."""
        for s in self.steps:
            if s[0] in ("unary", "binary", "reduce") and s[1] in KINKED:
                return True
        return False

    def build(self, dtype: str = "float32", static_ones: bool = False):
        """(inputs, outputs, values): symbolic inputs, symbolic outputs, input values.

        ``static_ones``: every input axis of length 1 is declared 1 statically (no length 1
        known only at run time)."""
        rng = np.random.default_rng(self.seed)
        env, inputs, values = [], [], []
        for step in self.steps:
            kind = step[0]
            if kind == "input":
                _, name, is_int, static, shape, bound = step
                if static_ones:
                    static = tuple(1 if n == 1 else s for s, n in zip(static, shape))
                var = T.tensor("int64" if is_int else dtype, static, name=name)
                if is_int:
                    value = rng.integers(-bound, bound, size=shape).astype("int64")
                else:
                    value = rng.standard_normal(shape).astype(dtype)
                inputs.append(var)
                values.append(value)
                env.append(var)
            else:
                env.append(_apply(step, env))
        return inputs, [env[i] for i in self.outputs], values

    def __repr__(self) -> str:
        lines = [f"# Program(seed={self.seed}): input values are rng.standard_normal / rng.integers from it"]
        for i, step in enumerate(self.steps):
            lines.append(f"v{i} = {_code(step)}")
        lines.append(f"outputs = [{', '.join(f'v{i}' for i in self.outputs)}]")
        return "\n".join(lines)


def _apply(step, env):
    kind = step[0]
    if kind == "unary":
        return UNARY[step[1]](env[step[2]])
    if kind == "binary":
        return BINARY[step[1]](env[step[2]], env[step[3]])
    if kind == "reduce":
        _, fn, a, axis, keepdims = step
        return getattr(env[a], fn)(axis=axis, keepdims=keepdims)
    if kind == "dot":
        return T.dot(env[step[1]], env[step[2]])
    if kind == "reshape":
        return env[step[1]].reshape(step[2])
    if kind == "dimshuffle":
        return env[step[1]].dimshuffle(*step[2])
    if kind == "index":
        return env[step[1]][step[2]]
    if kind == "take":
        _, a, axis, b = step
        return env[a][(slice(None),) * axis + (env[b],)]
    if kind == "take2":
        _, a, b, c = step
        return env[a][env[b], env[c]]
    if kind == "softmax":
        return T.nnet.softmax(env[step[1]], axis=step[2])
    if kind == "log_softmax":
        return T.nnet.log_softmax(env[step[1]], axis=step[2])
    if kind == "nll":
        _, a, labels = step
        return -T.log(T.nnet.softmax(env[a]))[T.arange(env[labels].shape[0]), env[labels]]
    if kind == "concat":
        _, a, b, axis = step
        return T.concatenate([env[a], env[b]], axis=axis)
    if kind == "bn":
        _, a, axes, g, b = step
        return T.nnet.bn.batch_normalization_train(env[a], env[g], env[b], axes=axes)[0]
    raise ValueError(kind)


def _index_code(idx) -> str:
    parts = []
    for e in idx:
        if isinstance(e, slice):
            s = ("" if e.start is None else str(e.start)) + ":" + ("" if e.stop is None else str(e.stop))
            parts.append(s + (f":{e.step}" if e.step is not None else ""))
        else:
            parts.append(str(e))
    return ", ".join(parts)


def _code(step) -> str:
    kind = step[0]
    if kind == "input":
        _, name, is_int, static, shape, bound = step
        dt = "'int64'" if is_int else "dtype"
        extra = f"  # value shape {shape}" + (f", integers in [-{bound}, {bound})" if is_int else "")
        return f"T.tensor({dt}, {static}, name={name!r}){extra}"
    if kind == "unary":
        return UNARY_CODE[step[1]].format(f"v{step[2]}")
    if kind == "binary":
        return BINARY_CODE[step[1]].format(f"v{step[2]}", f"v{step[3]}")
    if kind == "reduce":
        _, fn, a, axis, keepdims = step
        return f"v{a}.{fn}(axis={axis}, keepdims={keepdims})"
    if kind == "dot":
        return f"T.dot(v{step[1]}, v{step[2]})"
    if kind == "reshape":
        return f"v{step[1]}.reshape({step[2]})"
    if kind == "dimshuffle":
        return f"v{step[1]}.dimshuffle{tuple(step[2])}"
    if kind == "index":
        return f"v{step[1]}[{_index_code(step[2])}]"
    if kind == "take":
        _, a, axis, b = step
        return f"v{a}[{':, ' * axis}v{b}]"
    if kind == "take2":
        return f"v{step[1]}[v{step[2]}, v{step[3]}]"
    if kind == "softmax":
        return f"T.nnet.softmax(v{step[1]}, axis={step[2]})"
    if kind == "log_softmax":
        return f"T.nnet.log_softmax(v{step[1]}, axis={step[2]})"
    if kind == "nll":
        return f"-T.log(T.nnet.softmax(v{step[1]}))[T.arange(v{step[2]}.shape[0]), v{step[2]}]"
    if kind == "concat":
        return f"T.concatenate([v{step[1]}, v{step[2]}], axis={step[3]})"
    if kind == "bn":
        _, a, axes, g, b = step
        return f"T.nnet.bn.batch_normalization_train(v{a}, v{g}, v{b}, axes={axes!r})[0]"
    return repr(step)


# --- generation --------------------------------------------------------------------------------

class _Builder:
    """Generation state: the steps so far and, for each variable, its float32 graph variable
    (for static types) and its run-time shape."""

    def __init__(self, draw):
        self.draw = draw
        self.steps: list = []
        self.vars: list = []
        self.shapes: list[tuple] = []
        self.is_int: list[bool] = []

    def add(self, step, shape, is_int=False) -> int:
        if step[0] == "input":
            _, name, int_input, static, _, _ = step
            var = T.tensor("int64" if int_input else "float32", static, name=name)
        else:
            var = _apply(step, self.vars)
        assert var.ndim == len(shape), (step, var.type, shape)
        self.steps.append(step)
        self.vars.append(var)
        self.shapes.append(tuple(shape))
        self.is_int.append(is_int)
        return len(self.steps) - 1

    def new_input(self, shape, is_int=False, bound=0) -> int:
        draw = self.draw
        # each axis's length is static or known only at run time (None), at random
        static = tuple(n if draw(st.booleans()) else None for n in shape)
        name = f"{'i' if is_int else 'x'}{sum(1 for s in self.steps if s[0] == 'input')}"
        return self.add(("input", name, is_int, static, tuple(shape), bound), shape, is_int)

    def floats(self, min_ndim=0, max_ndim=4) -> list[int]:
        return [i for i, (s, b) in enumerate(zip(self.shapes, self.is_int))
                if not b and min_ndim <= len(s) <= max_ndim]


_lengths = st.sampled_from([3, 1, 2, 4, 1, 5])  # the first is what hypothesis shrinks towards


def _shape(draw, min_ndim=0, max_ndim=3):
    ndim = draw(st.integers(min_ndim, max_ndim))
    return tuple(draw(_lengths) for _ in range(ndim))


def _broadcast_partner(draw, shape):
    """A shape that broadcasts with ``shape``: some leading axes dropped, some lengths 1."""
    drop = draw(st.integers(0, len(shape)))
    out = [1 if draw(st.integers(0, 3)) == 0 else n for n in shape[drop:]]
    return tuple(out)


def _step(draw, b: _Builder) -> None:
    kind = draw(st.sampled_from(["unary", "unary", "binary", "binary", "binary", "reduce", "reduce", "dot",
                                 "reshape", "dimshuffle", "index", "take", "softmax", "bn", "log_softmax", "nll",
                                 "concat"]))
    floats = b.floats()
    computed = [i for i in floats if b.steps[i][0] != "input"]
    # mostly extend the latest result, so that steps chain into deep graphs
    a = computed[-1] if computed and draw(st.integers(0, 2)) < 2 else draw(st.sampled_from(floats))
    shape = b.shapes[a]
    if kind == "unary":
        b.add(("unary", draw(st.sampled_from(sorted(UNARY))), a), shape)
    elif kind == "binary":
        partners = [i for i in floats if _compatible(shape, b.shapes[i])]
        if draw(st.booleans()) or len(partners) < 2:
            other = b.new_input(_broadcast_partner(draw, shape))
        else:
            other = draw(st.sampled_from(partners))
        x, y = (a, other) if draw(st.booleans()) else (other, a)
        fn = draw(st.sampled_from(sorted(BINARY)))
        # "center" subtracts the mean of y (keepdims: all lengths 1), not y itself
        y_shape = (1,) * len(b.shapes[y]) if fn == "center" else b.shapes[y]
        b.add(("binary", fn, x, y), np.broadcast_shapes(b.shapes[x], y_shape))
    elif kind == "reduce":
        fn = draw(st.sampled_from(REDUCE))
        nd = len(shape)
        if nd == 0:
            axis = None
        else:
            axes = draw(st.lists(st.integers(0, nd - 1), unique=True, max_size=nd))
            axis = None if not axes else (axes[0] - nd if len(axes) == 1 and draw(st.booleans()) else tuple(axes))
        keepdims = draw(st.booleans())
        if fn == "prod" and int(np.prod(shape)) > 24:
            fn = "sum"  # long products under- or overflow float32
        reduced = range(nd) if axis is None else [d % nd for d in np.atleast_1d(axis)]
        out = tuple((1 if keepdims else None) if d in reduced else n for d, n in enumerate(shape))
        b.add(("reduce", fn, a, axis, keepdims), tuple(n for n in out if n is not None))
    elif kind == "dot":
        cands = b.floats(1, 2)
        if not cands:
            a = b.new_input(_shape(draw, 1, 2))
        else:
            a = draw(st.sampled_from(cands))
        k = b.shapes[a][-1]
        rhs_shape = (k,) if draw(st.booleans()) else (k, draw(_lengths))
        rhs = [i for i in b.floats(1, 2) if b.shapes[i] == rhs_shape and i != a]
        other = draw(st.sampled_from(rhs)) if rhs and draw(st.booleans()) else b.new_input(rhs_shape)
        b.add(("dot", a, other), b.shapes[a][:-1] + rhs_shape[1:])
    elif kind == "reshape":
        size = int(np.prod(shape))
        new = _factorize(draw, size)
        out = list(new)
        if new and draw(st.booleans()):
            new = list(new)
            new[draw(st.integers(0, len(new) - 1))] = -1
        b.add(("reshape", a, tuple(new)), tuple(out))
    elif kind == "dimshuffle":
        static = b.vars[a].type.shape
        keep = [d for d in range(len(shape)) if not (static[d] == 1 and draw(st.booleans()))]
        pattern = list(draw(st.permutations(keep)))
        for _ in range(draw(st.integers(0, 1))):
            pattern.insert(draw(st.integers(0, len(pattern))), "x")
        out = tuple(1 if p == "x" else shape[p] for p in pattern)
        b.add(("dimshuffle", a, tuple(pattern)), out)
    elif kind == "index":
        if not shape:
            b.add(("unary", "tanh", a), shape)
            return
        idx = []
        for n in shape[: draw(st.integers(1, len(shape)))]:
            if draw(st.integers(0, 2)) == 0:
                idx.append(draw(st.integers(-n, n - 1)))
            else:
                start = draw(st.one_of(st.none(), st.integers(-n, n)))
                stop = draw(st.one_of(st.none(), st.integers(-n, n)))
                step = draw(st.sampled_from([None, 1, 2, -1]))
                if not len(range(*slice(start, stop, step).indices(n))):
                    start = stop = None  # keep every array non-empty (max of nothing is an error)
                idx.append(slice(start, stop, step))
        out = np.zeros(shape)[tuple(idx)].shape
        b.add(("index", a, tuple(idx)), out)
    elif kind == "take":
        if not shape:
            b.add(("unary", "sqr", a), shape)
            return
        if len(shape) >= 2 and draw(st.booleans()):
            # x[rows, cols] on the first two axes, the pattern of the NLL cost
            n = draw(st.integers(1, 4))
            rows = b.new_input((n,), is_int=True, bound=shape[0])
            cols = b.new_input((n,), is_int=True, bound=shape[1])
            b.add(("take2", a, rows, cols), (n,) + shape[2:])
        else:
            axis = draw(st.integers(0, len(shape) - 1))
            ishape = _shape(draw, 1, 2)
            ind = b.new_input(ishape, is_int=True, bound=shape[axis])
            b.add(("take", a, axis, ind), shape[:axis] + ishape + shape[axis + 1:])
    elif kind == "softmax":
        if not shape:
            b.add(("unary", "sigmoid", a), shape)
            return
        b.add(("softmax", a, draw(st.integers(-len(shape), len(shape) - 1))), shape)
    elif kind == "log_softmax":
        if not shape:
            b.add(("unary", "softplus", a), shape)
            return
        b.add(("log_softmax", a, draw(st.integers(-len(shape), len(shape) - 1))), shape)
    elif kind == "nll":
        # the cost of the README, which the rewrites turn into one stable op
        if len(shape) != 2:
            a = b.new_input(_shape(draw, 2, 2))
            shape = b.shapes[a]
        labels = b.new_input((shape[0],), is_int=True, bound=shape[1])
        b.add(("nll", a, labels), (shape[0],))
    elif kind == "concat":
        if not shape:
            b.add(("unary", "cos", a), shape)
            return
        axis = draw(st.integers(0, len(shape) - 1))
        other_shape = shape[:axis] + (draw(_lengths),) + shape[axis + 1:]
        other = b.new_input(other_shape)
        x, y = (a, other) if draw(st.booleans()) else (other, a)
        out = shape[:axis] + (shape[axis] + other_shape[axis],) + shape[axis + 1:]
        b.add(("concat", x, y, axis), out)
    elif kind == "bn":
        if len(shape) < 2:
            x = b.new_input(_shape(draw, 2, 3))
            shape = b.shapes[x]
        else:
            x = a
        nd = len(shape)
        axes = draw(st.sampled_from(["per-activation", "spatial"] if nd > 2 else ["per-activation", (0,)]))
        normalized = (0,) if axes in ("per-activation", (0,)) else (0,) + tuple(range(2, nd))
        pshape = tuple(n for d, n in enumerate(shape) if d not in normalized)
        gamma = b.new_input(pshape)
        beta = b.new_input(pshape)
        b.add(("bn", x, axes, gamma, beta), shape)


def _compatible(s1, s2) -> bool:
    try:
        np.broadcast_shapes(s1, s2)
    except ValueError:
        return False
    return True


def _factorize(draw, size):
    """A random shape (0 to 3 axes) with ``size`` elements."""
    if size == 1 and draw(st.booleans()):
        return ()
    factors, n, p = [], size, 2
    while n > 1:
        while n % p == 0:
            factors.append(p)
            n //= p
        p += 1
    ndim = draw(st.integers(1, 3))
    out = [1] * ndim
    for f in factors:
        out[draw(st.integers(0, ndim - 1))] *= f
    return tuple(out)


@st.composite
def programs(draw, max_steps: int = 6) -> Program:
    """A random program of 3 to ``max_steps`` operations on 1 or 2 fresh inputs (and those the steps add)."""
    b = _Builder(draw)
    for _ in range(draw(st.integers(1, 2))):
        b.new_input(_shape(draw, 0, 3))
    for _ in range(draw(st.integers(min(3, max_steps), max_steps))):
        _step(draw, b)
    # the outputs: the last result and the two latest other results that no step uses, in
    # random order
    last = len(b.steps) - 1
    used = {i for s in b.steps for i in _operands(s)}
    unused = [i for i, s in enumerate(b.steps) if s[0] != "input" and i not in used and i != last]
    outputs = draw(st.permutations([last] + unused[-2:]))
    return Program(b.steps, list(outputs), draw(st.integers(0, 2**31 - 1)))


def _operands(step) -> tuple:
    kind = step[0]
    if kind in ("unary", "reduce", "reshape", "dimshuffle", "index", "softmax", "log_softmax"):
        return (step[2] if kind in ("unary", "reduce") else step[1],)
    if kind == "binary":
        return step[2], step[3]
    if kind in ("dot", "take2", "nll"):
        return tuple(step[1:])
    if kind == "concat":
        return step[1], step[2]
    if kind == "take":
        return step[1], step[3]
    if kind == "bn":
        return step[1], step[3], step[4]
    return ()
