"""Atomic writes: files and folders get the modes an ordinary write would give them."""

from __future__ import annotations

import os
import stat
import sys

import pytest

from privbias_lib import _io
from privbias_lib._io import (
    atomic_dir,
    atomic_path,
    current_umask,
    ordinary_file_modes,
    write_json_atomic,
    write_text_atomic,
)

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")


@pytest.fixture(params=[(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)], ids=["022", "077"])
def umask(request):
    """Run under a umask, restored afterwards; yields ``(umask, file mode, folder mode)``."""
    old = os.umask(request.param[0])
    try:
        yield request.param
    finally:
        os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@posix_only
def test_atomic_files_get_the_mode_of_an_ordinary_write(tmp_path, umask):
    _, file_mode, folder_mode = umask
    with open(tmp_path / "ordinary.txt", "w") as f:
        f.write("x")
    assert mode(tmp_path / "ordinary.txt") == file_mode
    assert mode(write_text_atomic(tmp_path / "a.txt", "x")) == file_mode
    assert mode(write_json_atomic(tmp_path / "new" / "b.json", {"x": 1})) == file_mode
    assert mode(tmp_path / "new") == folder_mode  # parents are made as by mkdir
    with atomic_path(tmp_path / "c.bin") as tmp:
        tmp.write_bytes(b"x")
    assert mode(tmp_path / "c.bin") == file_mode
    write_text_atomic(tmp_path / "a.txt", "again")  # a rewrite gets the same mode
    assert mode(tmp_path / "a.txt") == file_mode


@posix_only
def test_atomic_folder_and_its_contents_get_ordinary_modes(tmp_path, umask):
    _, file_mode, folder_mode = umask
    target = tmp_path / "cache" / "model"
    with atomic_dir(target) as tmp:
        (tmp / "sub").mkdir()
        (tmp / "sub" / "weights.bin").write_bytes(b"w")
        write_json_atomic(tmp / "manifest.json", {"files": 1})
    assert mode(target) == folder_mode
    assert mode(target / "sub") == folder_mode
    assert mode(target / "sub" / "weights.bin") == file_mode
    assert mode(target / "manifest.json") == file_mode
    assert sorted(p.name for p in target.parent.iterdir()) == ["model"]  # nothing left over


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux setgid inheritance")
def test_atomic_folder_keeps_a_shared_parents_setgid_like_mkdir(tmp_path, umask):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o2775)
    if not os.stat(shared).st_mode & stat.S_ISGID:
        pytest.skip("cannot set the setgid bit here")
    (shared / "plain").mkdir()
    with atomic_dir(shared / "atomic"):
        pass
    assert os.stat(shared / "atomic").st_mode == os.stat(shared / "plain").st_mode


def test_failed_atomic_writes_leave_the_target_and_no_temporaries(tmp_path):
    write_text_atomic(tmp_path / "a.txt", "old")
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "a.txt") as tmp:
        tmp.write_text("half")
        raise RuntimeError
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "kept").write_text("old")
    with pytest.raises(RuntimeError), atomic_dir(tmp_path / "d") as tmp:
        (tmp / "new").write_text("half")
        raise RuntimeError
    assert (tmp_path / "a.txt").read_text() == "old"
    assert [p.name for p in (tmp_path / "d").iterdir()] == ["kept"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "d"]


@posix_only
def test_umask_is_read_without_changing_it_with_or_without_proc(umask, monkeypatch):
    assert current_umask() == umask[0]
    monkeypatch.setattr(_io, "_umask_from_proc", lambda: None)  # macOS, Windows, no /proc
    _io._umask_by_setting.cache_clear()
    try:
        assert current_umask() == umask[0]
    finally:
        _io._umask_by_setting.cache_clear()
    assert os.umask(umask[0]) == umask[0]  # still in force


@posix_only
def test_files_a_library_wrote_private_get_ordinary_modes(tmp_path, umask):
    _, file_mode, folder_mode = umask
    (tmp_path / "sub").mkdir()
    for name, private in (("model.safetensors", 0o600), ("sub/open.json", 0o666)):
        (tmp_path / name).write_bytes(b"x")
        os.chmod(tmp_path / name, private)
    ordinary_file_modes(tmp_path)
    assert mode(tmp_path / "model.safetensors") == mode(tmp_path / "sub/open.json") == file_mode
    assert mode(tmp_path / "sub") == folder_mode
