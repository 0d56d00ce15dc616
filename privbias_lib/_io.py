"""Atomic writes: nothing half-written is ever read back (content hashes are in
:mod:`privbias_lib.hashing`).

Atomically written files and folders get the permissions an ordinary ``open(..., "w")`` or
``mkdir`` would give them (0644/0755 under the usual umask 022), not ``tempfile``'s private
0600/0700: results and caches on a shared server stay readable to colleagues.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import secrets
import shutil
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any


# The temporaries are created here rather than by tempfile.mkstemp/mkdtemp, which make them
# 0600/0700 whatever the umask. Creating them with the modes an ordinary open()/mkdir asks
# for (0o666/0o777) lets the kernel apply the umask itself, exactly as for any other file,
# and also a default ACL or a setgid parent folder; reading the umask instead (os.umask sets
# it process-wide while it answers, /proc/self/status is Linux-only) and chmod-ing the result
# would get those two wrong. O_EXCL (and mkdir) refuse an existing name or link, as mkstemp.
def _create_beside(target: Path, create) -> Path:
    """Create a hidden, fresh ``.<name>.<random>.tmp`` entry beside ``target`` with ``create``."""
    for _ in range(100):
        tmp = target.parent / f".{target.name}.{secrets.token_hex(6)}.tmp"
        try:
            create(tmp)
            return tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {target}")


def _create_file(path: Path) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    os.close(os.open(path, flags, 0o666))


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary file path beside ``target``; rename it into place on success.
    The file has the mode an ordinary write would give it (the umask applies)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_beside(target, _create_file)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(target: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``target`` atomically (temporary file, then rename)."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(target)


def write_json_atomic(target: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``target`` atomically."""
    return write_text_atomic(target, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``target``; on success it replaces ``target`` whole.

    A crash leaves at most a hidden ``.tmp`` folder, never a partial ``target``. The folder
    has the mode an ordinary ``mkdir`` would give it (the umask applies).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_beside(target, lambda p: p.mkdir(0o777))
    try:
        yield tmp
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


# Reading the umask: /proc/self/status has it ("Umask:", Linux 4.7+); reading that changes
# nothing and is always current, so it is read on every call. Elsewhere (macOS, Windows, no
# /proc) only os.umask() tells, and it *sets* the mask of the whole process while it answers:
# it is set to a private 0o077 and straight back, under a lock, once per process (cached), so
# a file another thread creates in that instant is at worst more private. The price there: a
# later umask change in the same process is not seen.
_UMASK_LOCK = threading.Lock()


def _umask_from_proc() -> int | None:
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return None


@functools.cache
def _umask_by_setting() -> int:
    with _UMASK_LOCK:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


def current_umask() -> int:
    """The process umask, read without changing it where the system allows (see above)."""
    mask = _umask_from_proc()
    return _umask_by_setting() if mask is None else mask


def ordinary_file_modes(root: str | os.PathLike) -> None:
    """Give every file under ``root`` the mode an ordinary write would (0o666, or 0o777 if
    executable, less the umask): for files a library writes private (safetensors: 0600)."""
    mask = current_umask()
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode):
                base = 0o777 if st.st_mode & 0o111 else 0o666
                os.chmod(path, base & ~mask)


def clear_folder(folder: str | os.PathLike, keep: tuple[str, ...] = ()) -> Path:
    """Create ``folder`` if needed and remove everything in it but the ``keep`` entries."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for item in folder.iterdir():
        if item.name not in keep:
            shutil.rmtree(item) if item.is_dir() else item.unlink()
    return folder
