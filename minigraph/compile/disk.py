"""Where minigraph keeps what it compiles, and how it writes there safely."""
from __future__ import annotations

import hashlib
import os
import uuid


def cache_dir() -> str:
    """The cache directory, read from ``MINIGRAPH_CACHE_DIR`` at each use (default ~/.cache/minigraph)."""
    return os.environ.get("MINIGRAPH_CACHE_DIR") or os.path.expanduser(os.path.join("~", ".cache", "minigraph"))


def atomic_write(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file renamed into place: a process reading
    ``path`` meanwhile, or one writing it at the same time, never sees a partial file."""
    tmp = f"{path}.tmp.{os.getpid()}.{uuid.uuid4().hex[:8]}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def checksummed(payload: bytes) -> bytes:
    """``payload`` with its SHA-256 in front, for ``verified`` to check when it is read back."""
    return hashlib.sha256(payload).digest() + payload


def verified(data: bytes) -> bytes | None:
    """The payload of what ``checksummed`` wrote, or None when ``data`` is damaged or truncated."""
    digest, payload = data[:32], data[32:]
    return payload if len(data) >= 32 and hashlib.sha256(payload).digest() == digest else None
