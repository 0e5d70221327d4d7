"""Atomic output: a file or a folder appears at its final path complete, or not at all.

Writers produce their output under a temporary name in the target's own directory (same filesystem,
so the final `os.replace` / `os.rename` is atomic), fsync it, then move it into place. Any exception
(including KeyboardInterrupt) deletes the temporary output and leaves an existing target untouched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from lightvid.errors import LightvidError


def _fsync_path(path: Path) -> None:
    """fsync a file or a directory entry table (best effort where the OS refuses directories)."""
    flags = os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() and hasattr(os, "O_DIRECTORY") else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it; restore at once
    os.umask(mask)
    return mask


def _final_mode(path: Path, is_dir: bool) -> int:
    """mkstemp/mkdtemp create 0600/0700; outputs get the existing target's mode or the umask default."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        return (0o777 if is_dir else 0o666) & ~_umask()


def _prepare_parent(path: Path) -> Path:
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise LightvidError(f"{path}: cannot create the output folder {parent} ({e.strerror})") from None
    return parent


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path` (same suffix); on success move it to `path` atomically.

    The temporary name is `.<stem>.<random>.tmp<suffix>`, so format-sniffing writers (PyAV, Pillow)
    pick the same format as for `path`. On success the file is fsynced and `os.replace`d onto `path`
    (replacing an existing file); on any exception it is deleted and `path` is left as it was.

        with atomic_write("out.mp4") as tmp:
            encode(frames, tmp)
    """
    path = Path(path)
    if path.is_dir():
        raise LightvidError(f"{path}: is a folder; expected a file path")
    parent = _prepare_parent(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if not tmp.is_file() or tmp.stat().st_size == 0:
            raise LightvidError(f"{path}: the writer produced no data")
        os.chmod(tmp, _final_mode(path, is_dir=False))
        _fsync_path(tmp)
        os.replace(tmp, path)
        _fsync_path(parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def check_dir_target(path: Path, overwrite: bool) -> None:
    """LightvidError unless `path` can become a folder: absent, empty, or replaceable (`overwrite`)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise LightvidError(f"{path}: exists and is not a folder; expected a folder")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise LightvidError(f"{path}: folder exists and is not empty; choose another path or overwrite it")


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success rename it to `path`.

    An existing non-empty folder at `path` is a LightvidError unless `overwrite=True`, in which case
    it is replaced (the old folder is moved aside, the new one renamed in, the old one deleted); an
    empty one is replaced silently. On any exception the temporary folder is deleted and `path` is
    left as it was. The check is made before yielding, so a refused target costs no work.
    """
    path = Path(path)
    check_dir_target(path, overwrite)
    parent = _prepare_parent(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent))
    try:
        yield tmp
        for f in tmp.iterdir():
            _fsync_path(f)
        os.chmod(tmp, _final_mode(path, is_dir=True))
        _fsync_path(tmp)
        check_dir_target(path, overwrite)  # the target may have appeared while we were writing
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=parent))
            os.rename(path, old / "d")  # move aside first: rename onto a non-empty folder fails
            try:
                os.rename(tmp, path)
            except BaseException:
                os.rename(old / "d", path)
                shutil.rmtree(old, ignore_errors=True)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, path)
        _fsync_path(parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
