"""Content fingerprints of input files and package versions: what cache keys are made of.

A cache key covers the *bytes* of every input file (a SHA-256 of the content), never its name, size or
modification time alone. Hashing is done at most once per file version per process: digests are kept
in memory by the file's identity ``(real path, size, mtime_ns, ctime_ns, inode, device)``, so a file
that is rewritten gets a new identity (ctime changes on every write, whatever mtime is set to) and is
hashed again. A parent process can hand its digests to worker processes (:func:`known_digests`,
:func:`remember_digests`), so that each file is hashed once per invocation.
"""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from importlib import metadata

from ltrsched.errors import UserError

#: File identity -> hex digest of its content (this process).
_DIGESTS: dict[tuple, str] = {}


def _identity(path: str) -> tuple:
    st = os.stat(path)
    return (path, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of the file's bytes (hashed once per file version and process).

    A file that changes while it is read is read again. Raises :class:`UserError` if it cannot be read.
    """
    real = os.path.realpath(path)
    try:
        ident = _identity(real)
        digest = _DIGESTS.get(ident)
        while digest is None:
            with open(real, "rb") as fh:
                digest = hashlib.file_digest(fh, "sha256").hexdigest()
            after = _identity(real)
            if after != ident:  # written meanwhile: hash the new version
                ident, digest = after, None
        _DIGESTS[ident] = digest
        return digest
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None


def known_digests() -> dict[tuple, str]:
    """The digests this process has computed (to hand to worker processes)."""
    return dict(_DIGESTS)


def remember_digests(digests: dict[tuple, str]) -> None:
    """Adopt digests computed by another process on this machine (keyed by file identity, so a file
    changed since is still hashed again)."""
    _DIGESTS.update(digests)


@lru_cache(maxsize=None)
def dist_version(name: str) -> str | None:
    """Installed version of the distribution ``name``, or None if it is not installed."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None

