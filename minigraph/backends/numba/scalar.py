"""Scalar ops as Python expressions for generated kernels.

Every step's result is wrapped in a constructor of its numpy dtype (``np.float32(...)``), so
a float32 program computes in float32 as numpy would, integer results wrap at their own width,
and literals are typed (``np.float32(0.5)``): nothing is silently promoted to float64.
"""
from __future__ import annotations

import numpy as np

from minigraph.tensor import elemwise as E

#: numpy dtype name -> the constructor used in generated code
def dtype_ctor(dtype) -> str:
    """``np.float32`` for "float32", ``np.bool_`` for "bool"."""
    name = np.dtype(dtype).name
    return "np.bool_" if name == "bool" else f"np.{name}"


def literal(value, dtype) -> str:
    """A typed literal: ``np.float32(0.5)``, ``np.int64(3)``, ``np.float64(np.inf)``."""
    v = np.asarray(value, dtype=dtype).item()
    if isinstance(v, float):
        if np.isnan(v):
            text = "np.nan"
        elif np.isinf(v):
            text = "np.inf" if v > 0 else "-np.inf"
        else:
            text = repr(v)
    else:
        text = repr(v)
    return f"{dtype_ctor(dtype)}({text})"


# op class -> function(args as expression strings) -> expression string (before the dtype cast)
_UNARY_UFUNC = {E.Neg: "-{0}", E.Abs: "np.abs({0})", E.Sgn: "np.sign({0})", E.Floor: "np.floor({0})",
                E.Ceil: "np.ceil({0})", E.Exp: "np.exp({0})", E.Expm1: "np.expm1({0})", E.Log: "np.log({0})",
                E.Log1p: "np.log1p({0})", E.Sqrt: "np.sqrt({0})", E.Sqr: "{0} * {0}", E.Tanh: "np.tanh({0})",
                E.Sin: "np.sin({0})", E.Cos: "np.cos({0})", E.Sigmoid: "sigmoid({0})",
                E.Softplus: "softplus({0})", E.Identity: "{0}", E.Invert: "{0} == 0"}
_BINARY = {E.Sub: "{0} - {1}", E.TrueDiv: "{0} / {1}", E.IntDiv: "{0} // {1}", E.Mod: "{0} % {1}",
           E.Pow: "{0} ** {1}", E.Maximum: "maximum({0}, {1})", E.Minimum: "minimum({0}, {1})",
           E.LT: "{0} < {1}", E.GT: "{0} > {1}", E.LE: "{0} <= {1}", E.GE: "{0} >= {1}", E.EQ: "{0} == {1}",
           E.NEQ: "{0} != {1}", E.And: "({0} != 0) and ({1} != 0)", E.Or: "({0} != 0) or ({1} != 0)"}

def supports(scalar_op) -> bool:
    """True when ``scalar_op`` (and every step of a Composite) has an expression here."""
    if isinstance(scalar_op, E.Composite):
        return all(supports(op) for op, _ in scalar_op.program)
    return type(scalar_op) in _UNARY_UFUNC or type(scalar_op) in _BINARY or isinstance(
        scalar_op, (E.Add, E.Mul, E.Clip, E.Switch, E.Cast))


def expression(op, args: list[str], arg_dtypes: list[str]) -> str:
    """The expression computing ``op`` on argument expressions (not yet cast to its dtype)."""
    cls = type(op)
    if cls is E.Tanh and arg_dtypes[0] == "float32":  # libm's tanhf is slow and not vectorized
        return f"tanh32({args[0]})"
    if cls in _UNARY_UFUNC:
        return _UNARY_UFUNC[cls].format(*args)
    if cls in _BINARY:
        return _BINARY[cls].format(*args)
    if isinstance(op, E.Add):
        return " + ".join(args)
    if isinstance(op, E.Mul):
        return " * ".join(args)
    if isinstance(op, E.Clip):
        return f"minimum(maximum({args[0]}, {args[1]}), {args[2]})"
    if isinstance(op, E.Switch):
        return f"{args[1]} if {args[0]} else {args[2]}"
    if isinstance(op, E.Cast):
        if np.dtype(op.dtype).kind == "b":
            return f"{args[0]} != 0"
        return args[0]
    raise NotImplementedError(f"no numba expression for scalar op {op}")


def program_lines(scalar_op, inputs: list[str], in_dtypes: list[str], prefix: str = "t") -> tuple[list[str], list[str], list[str]]:
    """Statements computing ``scalar_op`` on input expressions: (lines, output names, output dtypes).

    Each step becomes ``t3 = np.float32(t1 * t2)``: the cast fixes the result to the dtype
    numpy gives that step, so the kernel's arithmetic matches the reference interpreter.
    """
    if isinstance(scalar_op, E.Composite):
        program, outputs = scalar_op.program, scalar_op.outputs
    else:
        program, outputs = ((scalar_op, tuple(range(len(inputs)))),), (len(inputs),)
    names, dtypes, lines = list(inputs), list(in_dtypes), []
    for k, (op, slots) in enumerate(program):
        arg_dt = [dtypes[s] for s in slots]
        name = f"{prefix}{k}"
        if isinstance(op, E.Composite):  # a fused program inside a fused program: inline it
            inner, outs, out_dts = program_lines(op, [names[s] for s in slots], arg_dt, prefix=f"{name}_")
            lines.extend(inner)
            lines.append(f"{name} = {outs[0]}")
            names.append(name)
            dtypes.append(out_dts[0])
            continue
        out_dt = op.out_dtypes(*arg_dt)[0]
        expr = expression(op, [names[s] for s in slots], arg_dt)
        comment = f"  # {op.name}" if isinstance(scalar_op, E.Composite) else ""
        lines.append(f"{name} = {dtype_ctor(out_dt)}({expr}){comment}")
        names.append(name)
        dtypes.append(out_dt)
    return lines, [names[o] for o in outputs], [dtypes[o] for o in outputs]
