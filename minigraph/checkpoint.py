"""Checkpoints: ``mg.save(path, params)`` and ``mg.load(path, params)``, without pickle.

A checkpoint is one file, written at exactly ``path``: a zip archive (the ``.npz`` layout,
uncompressed) holding

- ``manifest.json``: UTF-8 JSON ``{"format": "minigraph-checkpoint", "version": 1,
  "entries": [...], "metadata": {...}}``.  Each entry describes one shared variable:
  ``{"name": "W", "kind": "tensor", "array": "a0", "dtype": "float32", "shape": [784, 10]}``
  or, for the numpy ``Generator`` behind a random stream (``mg.RandomStreams``),
  ``{"name": "rng0", "kind": "generator", "bit_generator": "PCG64", "state": {...}}`` where
  ``state`` is the bit generator's state dict (Python ints; any array inside it is stored
  as a member and written as ``{"__array__": "a3"}``).  ``metadata`` is whatever JSON the
  caller passed (the training loop keeps its epoch and history there).
- ``a0.npy``, ``a1.npy``, ...: the arrays in numpy's ``.npy`` format (never object arrays),
  so ``np.load(path, allow_pickle=False)`` reads every array with no minigraph installed.

Writing is atomic: the archive goes to a temporary file in the same directory, is flushed
and fsynced, then ``os.replace``-d over ``path`` (and the directory fsynced), so a crash
during a write leaves the previous checkpoint intact.  Loading checks every name, kind,
shape and dtype before it sets anything, and reports every mismatch at once.
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections.abc import Mapping

import numpy as np

from minigraph.compile.shared import SharedVariable, TensorSharedVariable

FORMAT = "minigraph-checkpoint"
VERSION = 1
MANIFEST = "manifest.json"


class CheckpointError(ValueError):
    """The file is not a readable minigraph checkpoint."""


class MissingParameterError(KeyError):
    """Parameters asked for are not in the checkpoint (a KeyError that prints its message plainly)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


# --- which shared variables ----------------------------------------------------------------

def collect(params) -> list[tuple[str, SharedVariable]]:
    """``(name, variable)`` pairs for ``params``: a shared variable, a list or tuple of them,
    a mapping ``{name: variable}``, a ``RandomStreams`` (its generators) or a model object
    with ``params`` (and optionally ``running_stats`` / ``state`` / ``streams`` / ``rngs``)
    attributes, such as ``minigraph.nn.MLP``."""
    from minigraph.random import RandomStreams

    pairs: list[tuple[str, SharedVariable]] = []
    seen: set[int] = set()

    def add(name, var):
        if id(var) in seen:
            return
        seen.add(id(var))
        if not name:
            raise ValueError(f"checkpoint: a shared variable without a name ({var.type}) cannot be saved or "
                             f"loaded by name; create it with name=... or pass a dict {{name: variable}}")
        pairs.append((str(name), var))

    def visit(p, depth=0):
        if depth > 50:
            raise ValueError("checkpoint: params nest too deeply")
        if isinstance(p, SharedVariable):
            add(p.name, p)
        elif isinstance(p, RandomStreams):
            for v in p.state_updates:
                add(v.name, v)
        elif isinstance(p, Mapping):
            for k, v in p.items():
                if isinstance(v, SharedVariable):
                    add(k, v)
                else:
                    visit(v, depth + 1)
        elif isinstance(p, (list, tuple)):
            for v in p:
                visit(v, depth + 1)
        elif hasattr(p, "params"):
            for attr in ("params", "running_stats", "state", "streams", "rngs"):
                if getattr(p, attr, None) is not None:
                    visit(getattr(p, attr), depth + 1)
        else:
            raise TypeError(f"checkpoint: cannot take the shared variables of {type(p).__name__}: pass shared "
                            f"variables, a list or dict of them, or a model with a .params attribute")

    visit(params)
    names = [n for n, _ in pairs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"checkpoint: several shared variables are named {', '.join(map(repr, dupes))}; "
                         f"names must be unique (rename them, or pass a dict {{name: variable}})")
    return pairs


def _is_generator_var(var) -> bool:
    return isinstance(var.get_value(borrow=True), np.random.Generator)


# --- generator states as JSON ----------------------------------------------------------------

def _encode_state(state, arrays: dict):
    """The bit generator's state dict as JSON, its arrays moved to ``arrays``."""
    if isinstance(state, Mapping):
        return {str(k): _encode_state(v, arrays) for k, v in state.items()}
    if isinstance(state, np.ndarray):
        key = f"a{len(arrays)}"
        arrays[key] = state
        return {"__array__": key}
    if isinstance(state, (np.integer, int)) and not isinstance(state, bool):
        return int(state)
    if isinstance(state, (np.floating, float)):
        return float(state)
    if isinstance(state, (str, bool)) or state is None:
        return state
    raise TypeError(f"checkpoint: cannot store a generator state holding {type(state).__name__}")


def _decode_state(state, npz):
    if isinstance(state, dict):
        if set(state) == {"__array__"}:
            return np.array(npz[state["__array__"]])
        return {k: _decode_state(v, npz) for k, v in state.items()}
    return state


def _make_generator(bit_generator: str, state) -> np.random.Generator:
    cls = getattr(np.random, bit_generator, None)
    if not (isinstance(cls, type) and issubclass(cls, np.random.BitGenerator)):
        raise CheckpointError(f"checkpoint: unknown bit generator {bit_generator!r}")
    bg = cls()
    bg.state = state
    return np.random.Generator(bg)


# --- save ----------------------------------------------------------------------------------

def save(path, params, metadata=None) -> None:
    """Write the values of the shared variables ``params`` to exactly ``path``, atomically.

    ``metadata``: optional JSON-serializable dict kept in the manifest (``load`` returns it).
    """
    path = os.fspath(path)
    entries, arrays = [], {}
    for name, var in collect(params):
        value = var.get_value(borrow=True)
        if isinstance(value, np.random.Generator):
            bg = value.bit_generator
            entries.append({"name": name, "kind": "generator", "bit_generator": type(bg).__name__,
                            "state": _encode_state(bg.state, arrays)})
            continue
        arr = np.asarray(value)
        if arr.dtype.hasobject:
            raise TypeError(f"checkpoint: shared variable {name!r} holds objects ({arr.dtype}); only numeric arrays "
                            f"can be saved")
        key = f"a{len(arrays)}"
        arrays[key] = arr
        entries.append({"name": name, "kind": "tensor", "array": key, "dtype": str(arr.dtype),
                        "shape": list(arr.shape)})
    manifest = {"format": FORMAT, "version": VERSION, "entries": entries, "metadata": metadata or {}}
    try:
        manifest_bytes = json.dumps(manifest, indent=1, sort_keys=False, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as e:
        raise TypeError(f"checkpoint: metadata must be JSON-serializable (finite numbers, str, lists, dicts): {e}") \
            from None

    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
                zf.writestr(MANIFEST, manifest_bytes)
                for key, arr in arrays.items():
                    _write_array(zf, key, arr)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        # any failure (or Ctrl-C) before the replace leaves the old checkpoint as it was
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(directory)


def _write_array(zf: zipfile.ZipFile, key: str, arr: np.ndarray) -> None:
    with zf.open(f"{key}.npy", "w", force_zip64=True) as member:
        np.lib.format.write_array(member, np.asarray(arr), allow_pickle=False)


def _fsync_dir(directory: str) -> None:
    """Make the rename itself durable (POSIX; a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --- load ----------------------------------------------------------------------------------

def read_manifest(path) -> dict:
    """The manifest of the checkpoint at ``path`` (entries and metadata), without the arrays."""
    path = os.fspath(path)
    try:
        with zipfile.ZipFile(path) as zf:
            raw = zf.read(MANIFEST)
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, KeyError, OSError) as e:
        raise CheckpointError(f"{path}: not a minigraph checkpoint ({e})") from None
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: the manifest is not valid JSON ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a minigraph checkpoint (manifest format {manifest.get('format')!r})"
                              if isinstance(manifest, dict) else f"{path}: not a minigraph checkpoint")
    if manifest.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {manifest.get('version')!r} is not supported "
                              f"(this minigraph reads version {VERSION})")
    return manifest


def load(path, params, strict: bool = True) -> dict:
    """Set the shared variables ``params`` from the checkpoint at ``path``, matched by name.

    Every name, kind, shape and dtype is checked before any value is set; on a mismatch
    nothing changes and the error names every mismatching parameter: KeyError when the only
    problem is names missing from the file, ValueError otherwise.  ``strict``: entries in
    the file that match none of ``params`` are an error too.  Returns the saved metadata.
    """
    path = os.fspath(path)
    manifest = read_manifest(path)
    pairs = collect(params)
    by_name = {}
    for e in manifest["entries"]:
        by_name[e["name"]] = e

    missing, wrong, new_values = [], [], []
    try:
        npz = np.load(path, allow_pickle=False)
    except (ValueError, OSError, zipfile.BadZipFile) as e:
        raise CheckpointError(f"{path}: cannot read the arrays ({e})") from None
    with npz:
        for name, var in pairs:
            entry = by_name.get(name)
            if entry is None:
                missing.append(name)
                continue
            is_gen = _is_generator_var(var)
            if entry["kind"] == "generator" or is_gen:
                if entry["kind"] != "generator" or not is_gen:
                    have = "a random generator" if is_gen else f"a tensor {var.type}"
                    saved = "a random generator" if entry["kind"] == "generator" else \
                        f"a tensor {entry['dtype']}{entry['shape']}"
                    wrong.append(f"{name!r}: the checkpoint holds {saved}, the variable is {have}")
                    continue
                try:
                    gen = _make_generator(entry["bit_generator"], _decode_state(entry["state"], npz))
                except (ValueError, TypeError, KeyError) as e:
                    raise CheckpointError(f"{path}: generator {name!r}: {e}") from None
                new_values.append((var, gen))
                continue
            shape, dtype = tuple(entry["shape"]), entry["dtype"]
            problems = []
            if dtype != var.type.dtype:
                problems.append(f"dtype {dtype} in the checkpoint, {var.type.dtype} in the variable")
            if len(shape) != var.type.ndim or not var.type.shape_matches(shape):
                current = var.get_value(borrow=True).shape
                problems.append(f"shape {shape} in the checkpoint, {current} in the variable ({var.type})")
            if problems:
                wrong.append(f"{name!r}: " + "; ".join(problems))
                continue
            try:
                arr = npz[entry["array"]]
            except (KeyError, ValueError, OSError, zipfile.BadZipFile) as e:
                raise CheckpointError(f"{path}: cannot read the array of {name!r} ({e})") from None
            if arr.shape != shape or str(arr.dtype) != dtype:
                raise CheckpointError(f"{path}: the array of {name!r} is {arr.dtype}{list(arr.shape)} but the "
                                      f"manifest says {dtype}{list(shape)}; the file is damaged")
            new_values.append((var, arr))

    wanted = {n for n, _ in pairs}
    extra = [n for n in by_name if n not in wanted] if strict else []
    if missing or wrong or extra:
        lines = []
        if missing:
            lines.append("not in the checkpoint: " + ", ".join(map(repr, missing)))
        lines.extend(wrong)
        if extra:
            lines.append("in the checkpoint but not among the parameters: " + ", ".join(map(repr, extra)) +
                         " (pass strict=False to ignore them)")
        message = f"load {path}: the checkpoint does not match the parameters:\n  " + "\n  ".join(lines)
        if missing and not wrong and not extra:
            raise MissingParameterError(message)
        raise ValueError(message)
    for var, value in new_values:
        if isinstance(var, TensorSharedVariable):
            var.set_value(value)
        else:
            var.set_value(value, borrow=True)
    return manifest.get("metadata", {})


__all__ = ["save", "load", "read_manifest", "collect", "CheckpointError", "MissingParameterError"]
