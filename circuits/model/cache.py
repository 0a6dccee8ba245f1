"""The converted-model cache's self-check: a manifest of what was written, verified on every load.

A cache entry is a folder (``config.json``, ``weights.safetensors``, ``tokenizer/``) written
atomically by :mod:`circuits.model.loading`. The folder's last file, ``manifest.json``, records the
size and SHA-256 of every other file. :func:`verify_entry` checks them on load: a truncated,
zeroed, overwritten or half-deleted entry (or one written by an older headgraph, without a
manifest) is reported as damaged, and the loader converts the model again with a one-line
:class:`~circuits.errors.HeadgraphWarning` instead of computing with wrong weights.

Hashing SmolLM2's 652 MB of weights takes 1.1–2 s on the busy build machine, a third or more of a
cached load. So a successful full check leaves a stamp (``verified.json``: each file's size,
mtime, ctime and inode) and later loads hash only the files whose stat differs from it. Any write
to a file changes its ctime, which no user-space tool can set back; a stamp vouches only for files
whose ctime is :data:`STAMP_MARGIN_NS` older than the stamp, since the kernel's timestamp clock is
coarse (a write in the same few milliseconds could keep the ctime). What the stamp cannot see is
corruption below the file system (a failing disk); deleting ``verified.json`` forces a full check.

When the cache folder cannot be written, :func:`writable_root` falls back to a temporary folder
(removed at exit) and says so once per process.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import shutil
import tempfile
import time
import warnings
from pathlib import Path

from circuits.errors import HeadgraphWarning

__all__ = ["MANIFEST", "STAMP", "STAMP_MARGIN_NS", "CacheDamage", "verify_entry", "write_manifest", "writable_root"]

MANIFEST = "manifest.json"
"""The file, written last, that lists every other file of a cache entry with its size and hash."""

STAMP = "verified.json"
"""Each file's stat when the entry was last fully verified (not part of the manifest)."""

STAMP_MARGIN_NS = 2_000_000_000
"""A stamp vouches for a file only if the file's ctime is this much older than the stamp."""

_HASH = "sha256"
_CHUNK = 1 << 22


class CacheDamage(Exception):
    """A cache entry is incomplete or its contents differ from its manifest (the message says how)."""


def _digest(path: Path) -> str:
    h = hashlib.new(_HASH)
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


_OWN = (MANIFEST, STAMP, f".{STAMP}.tmp")


def _files(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*") if p.is_file() and p.relative_to(folder).as_posix() not in (MANIFEST, STAMP)
    )


def _stat(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _vouched(folder: Path) -> dict[str, list[int]]:
    """The stamp's stats of the files it may vouch for (none if it is missing or unreadable)."""
    try:
        stamp = json.loads((folder / STAMP).read_text())
        taken, files = int(stamp["taken_ns"]), dict(stamp["files"])
        return {
            rel: key
            for rel, key in files.items()
            if isinstance(key, list) and len(key) == 4 and all(isinstance(k, int) for k in key)
            and taken - key[2] >= STAMP_MARGIN_NS
        }  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _write_stamp(folder: Path, files: dict[str, Path]) -> None:
    """Record the verified files' stats (best effort: a read-only cache just hashes every time)."""
    stamp = {"taken_ns": time.time_ns(), "files": {rel: _stat(p) for rel, p in files.items()}}
    try:
        tmp = folder / f".{STAMP}.tmp"
        tmp.write_text(json.dumps(stamp))
        tmp.replace(folder / STAMP)
    except OSError:
        pass


def write_manifest(folder: Path) -> None:
    """Record the size and hash of every file under ``folder`` in ``folder/manifest.json``."""
    files = {p.relative_to(folder).as_posix(): {"size": p.stat().st_size, _HASH: _digest(p)} for p in _files(folder)}
    (folder / MANIFEST).write_text(json.dumps({"hash": _HASH, "files": files}, indent=1, sort_keys=True))


def verify_entry(folder: Path, *, under: str = "") -> None:
    """Check every file of a cache entry (or only those whose path starts with ``under``) against its manifest.

    Raises:
        CacheDamage: no manifest, an unreadable manifest, a missing, extra, resized or changed file.
    """
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        expected = manifest["files"]
        algorithm = manifest["hash"]
        if not isinstance(expected, dict) or algorithm != _HASH:
            raise ValueError("unexpected layout")
    except FileNotFoundError:
        raise CacheDamage(f"no {MANIFEST} (incomplete, or written by an older headgraph)") from None
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as err:
        raise CacheDamage(f"unreadable {MANIFEST} ({type(err).__name__})") from None
    expected = {rel: entry for rel, entry in expected.items() if rel.startswith(under)}
    found = {rel: p for p in _files(folder) if (rel := p.relative_to(folder).as_posix()).startswith(under)}
    missing = sorted(set(expected) - set(found))
    if missing:
        raise CacheDamage(f"{missing[0]} is missing")
    extra = sorted(set(found) - set(expected))
    if extra:
        raise CacheDamage(f"unexpected file {extra[0]}")
    vouched = _vouched(folder)
    hashed = False
    for rel in sorted(expected, key=lambda r: found[r].stat().st_size):  # small files first: fail fast
        entry, path = expected[rel], found[rel]
        try:
            size, digest = int(entry["size"]), str(entry[_HASH])
        except (KeyError, TypeError, ValueError):
            raise CacheDamage(f"unreadable {MANIFEST} entry for {rel}") from None
        if path.stat().st_size != size:
            raise CacheDamage(f"{rel} has {path.stat().st_size} bytes, {size} were written")
        if vouched.get(rel) == _stat(path):
            continue  # unchanged since a full check
        hashed = True
        if _digest(path) != digest:
            raise CacheDamage(f"{rel} differs from what was written ({_HASH} mismatch)")
    if hashed and not under:
        _write_stamp(folder, found)


_fallback: Path | None = None


def _probe(root: Path) -> None:
    """Raise OSError unless a folder can be created and removed under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(tempfile.mkdtemp(prefix=".write-probe.", dir=root))


def writable_root(root: Path) -> Path:
    """``root`` if a cache entry can be written there, else a temporary folder (warned once).

    The temporary folder lives until the process exits: the model converts again on the next run.
    """
    global _fallback
    try:
        _probe(root)
    except OSError as err:
        if _fallback is None:
            _fallback = Path(tempfile.mkdtemp(prefix="headgraph-cache-"))
            atexit.register(shutil.rmtree, _fallback, ignore_errors=True)
            reason = err.strerror or type(err).__name__
            warnings.warn(
                f"cannot write the model cache {root} ({reason}); using the temporary cache {_fallback} "
                "for this run (set HEADGRAPH_CACHE to a writable folder to keep the conversion)",
                HeadgraphWarning,
                stacklevel=2,
            )
        return _fallback
    return root
