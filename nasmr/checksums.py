"""sha256 of files: the identity of raw inputs, warehouse tables and release files."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of bytes already read (a raw file hashed as it was parsed)."""
    return hashlib.sha256(data).hexdigest()


def content_hash(entries: Iterable[tuple[str, str]]) -> str:
    """sha256 of the sha256sum-style listing of ``(path, sha256)`` entries, sorted by path:
    the input files (paths relative to the drop), and for a warehouse version what models
    read too."""
    listing = "".join(f"{sha256}  {path}\n" for path, sha256 in sorted(entries))
    return hashlib.sha256(listing.encode()).hexdigest()
