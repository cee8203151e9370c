"""The compile cache: generated kernel modules on disk, compiled code cached beside them.

Each kernel's source is written to ``<MINIGRAPH_CACHE_DIR>/kernels/k_<hash>.py`` (the hash
covers the source and the versions of numba, numpy, Python and minigraph) and imported from
there, so numba's own file cache works for it.  The numba cache files are checksummed: an entry
that is corrupted or truncated fails the check, is counted in ``stats()["corrupt"]`` and is
compiled again; writes go to a temporary file renamed into place, so processes compiling at
once never leave a partial file.  In one process identical kernels compile once.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import sys
import threading
import warnings

import numba
import numpy as np
from numba.core.caching import FunctionCache, IndexDataCacheFile

from minigraph.compile.disk import atomic_write, cache_dir, checksummed, verified  # noqa: F401  (cache_dir: this module's API)

_STATS = {"compiled": 0, "cache_hits": 0, "corrupt": 0, "modules_written": 0, "memory_hits": 0}
_MEMO: dict[str, tuple] = {}
_LOCK = threading.RLock()

#: the helpers every kernel module imports (generated code may call them by these names)
HELPERS = ("check_shape", "copy_into", "maximum", "minimum", "reuse", "sigmoid", "softplus", "tanh32")
#: the names a kernel module defines before its kernel
HEADER_NAMES = ("np", "njit", "prange") + HELPERS
_HEADER = f'''# minigraph kernel module (generated; safe to delete: it is rebuilt when missing)
import numpy as np
from numba import njit, prange
from minigraph.backends.numba.helpers import {", ".join(HELPERS)}
'''


def stats() -> dict:
    """Counters since the process started: ``compiled`` (numba compilations), ``cache_hits``
    (compiled code loaded from disk), ``corrupt`` (cache entries found damaged and rebuilt),
    ``modules_written`` and ``memory_hits`` (kernels found already built in this process)."""
    return dict(_STATS)


def reset_stats() -> None:
    """Zero the counters."""
    for k in _STATS:
        _STATS[k] = 0


@functools.lru_cache(maxsize=None)
def version_key() -> str:
    """What compiled code depends on besides its source."""
    import minigraph

    from minigraph.backends.numba import helpers

    with open(helpers.__file__, "rb") as f:  # kernels inline the helpers: a change must rebuild them
        helpers_hash = hashlib.sha256(f.read()).hexdigest()[:12]
    return (f"numba={numba.__version__};numpy={np.__version__};python={sys.version.split()[0]};"
            f"minigraph={minigraph.__version__};helpers={helpers_hash}")


def source_hash(source: str) -> str:
    return hashlib.sha256((version_key() + "\n" + source).encode()).hexdigest()[:24]


class _CheckedFile(IndexDataCacheFile):
    """numba's index/data files with a SHA-256 of each data file's contents stored in front."""

    def _dump(self, obj):
        return checksummed(super()._dump(obj))

    @staticmethod
    def _verified(data: bytes, what: str):
        import pickle

        payload = verified(data)
        if payload is None:
            _STATS["corrupt"] += 1
            raise OSError(f"minigraph cache: {what} is damaged")  # numba treats it as a miss
        return pickle.loads(payload)

    def _load_data(self, name):
        with open(self._data_path(name), "rb") as f:
            return self._verified(f.read(), name)

    def _load_index(self):
        import pickle

        try:
            with open(self._index_path, "rb") as f:
                version = pickle.load(f)
                data = f.read()
        except FileNotFoundError:
            return {}
        except Exception:
            _STATS["corrupt"] += 1
            return {}
        if version != self._version:
            return {}
        try:
            stamp, overloads = self._verified(data, self._index_name)
        except Exception:
            return {}
        return overloads if stamp == self._source_stamp else {}


class _SafeCache(FunctionCache):
    """numba's per-function file cache, checksummed, counting hits and compilations, and
    treating any failure to load as a miss."""

    def __init__(self, py_func):
        super().__init__(py_func)
        self._cache_file = _CheckedFile(self._cache_path, self._impl.filename_base,
                                        self._impl.locator.get_source_stamp())

    def load_overload(self, sig, target_context):
        try:
            data = super().load_overload(sig, target_context)
        except Exception:
            _STATS["corrupt"] += 1
            data = None
        if data is not None:
            _STATS["cache_hits"] += 1
        return data

    def save_overload(self, sig, data):
        _STATS["compiled"] += 1
        try:
            super().save_overload(sig, data)
        except Exception as e:  # a full disk or a read-only cache must not break the program
            warnings.warn(f"minigraph: could not write the compile cache ({e})", stacklevel=2)


def _module_text(source: str, parallel: bool) -> str:
    if not parallel:
        return _HEADER + "\n\n" + source
    par = source.replace("def kernel(", "def kernel_parallel(", 1)
    return _HEADER + "\n\n" + source + "\n\n" + par


def _import(path: str, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def kernel_key(source: str, fastmath: bool = False, parallel: bool = True, boundscheck: bool = False) -> str:
    """The name under which ``build`` caches the kernel defined in ``source``."""
    options = f"\n#fastmath={fastmath}" + ("\n#boundscheck" if boundscheck else "")
    return source_hash(source + options) + ("" if parallel else "s")


def build(source: str, fastmath: bool = False, parallel: bool = True, env: dict | None = None,
          name: str = "kernel", boundscheck: bool = False) -> tuple:
    """(serial, parallel) numba dispatchers for the kernel defined in ``source`` (``def
    kernel``, or ``def <name>``); both compile lazily on first call, from the disk cache when it
    has them.  ``env`` adds globals the kernel calls (other dispatchers): the source must name
    what they are (their ``kernel_key``), since the cache key is the source's hash.
    ``boundscheck``: indexing out of range raises IndexError (as numpy) instead of reading past."""
    key = kernel_key(source, fastmath, parallel, boundscheck)
    with _LOCK:
        if key in _MEMO:
            _STATS["memory_hits"] += 1
            return _MEMO[key]
        text = _module_text(source, parallel)
        directory = os.path.join(cache_dir(), "kernels")
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, f"k_{key}.py")
        data = text.encode()
        try:
            with open(path, "rb") as f:
                current = f.read()
        except OSError:
            current = None
        if current != data:  # missing, or damaged: (re)write it
            atomic_write(path, data)
            _STATS["modules_written"] += 1
        module = _import(path, f"minigraph_kernel_{key}")
        module.__dict__.update(env or {})
        opts = dict(error_model="numpy", nogil=True, boundscheck=boundscheck)
        if fastmath:
            opts["fastmath"] = {"reassoc", "nsz", "contract"}
        serial = numba.njit(**opts)(getattr(module, name))
        par = numba.njit(parallel=True, **opts)(module.kernel_parallel) if parallel else serial
        for d in {id(serial): serial, id(par): par}.values():
            d._cache = _SafeCache(d.py_func)
        _MEMO[key] = (serial, par)
        return serial, par
