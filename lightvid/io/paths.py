"""Paths in and out, checked before any work: no input is ever overwritten, nothing waits on a pipe.

Inputs must be regular files (a video may also be a folder of frames): a FIFO, a device or a socket is refused
from its `stat` before it is opened (opening a FIFO for reading waits for a writer forever), and an image is
opened non-blocking and checked again on the open file. Outputs (a file, its GIF preview, a folder of frames)
are compared with every input by resolved path and `os.path.samefile` (symlinks, hard links, `./a.gif` against
`a.gif`): an output that is an input, or a frames folder that holds an input, is refused. Output names must fit
the filesystem (NAME_MAX per name, PATH_MAX for the path as given, with room for the temporary names).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from lightvid.errors import LightvidError
from lightvid.io.atomic import shown

TEMP_PATH_MARGIN = 64  # bytes a temporary name or a frame file name (frame_00000.png) adds to an output path

_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _not_regular(st: os.stat_result) -> str:
    return next((name for test, name in _KINDS if test(st.st_mode)), "not a regular file")


def check_input(path: str | os.PathLike, what: str, folder_ok: bool = False) -> Path:
    """`path` as a Path if it is a regular file (or, with `folder_ok`, a folder); else a one-line LightvidError
    naming it. Only `stat` is called: nothing is opened. `what` says what was expected ("an image file")."""
    path = Path(path)
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise LightvidError(f"{shown(path)}: no such file{' or folder' if folder_ok else ''}") from None
    except OSError as e:
        raise LightvidError(f"{shown(path)}: cannot read ({e.strerror})") from None
    except ValueError:  # an embedded NUL byte
        raise LightvidError(f"{shown(path)}: not a valid path") from None
    if stat.S_ISDIR(st.st_mode):
        if folder_ok:
            return path
        raise LightvidError(f"{shown(path)}: is a folder; expected {what}")
    if not stat.S_ISREG(st.st_mode):
        raise LightvidError(f"{shown(path)}: is {_not_regular(st)}; expected {what}")
    return path


def open_input(path: str | os.PathLike, what: str) -> BinaryIO:
    """Open a regular file for reading without ever blocking: `check_input`, then a non-blocking open whose
    descriptor is checked again (the path may have been replaced by a FIFO in between)."""
    path = check_input(path, what)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        raise LightvidError(f"{shown(path)}: cannot read ({e.strerror})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise LightvidError(f"{shown(path)}: is {_not_regular(st)}; expected {what}")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _absolute(path: Path) -> Path:
    return Path(os.path.abspath(path))


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a symlink loop
        return _absolute(path)


def is_same_file(a: Path, b: Path) -> bool:
    """True if `a` and `b` name the same file: same inode (hard links, symlinks) or the same resolved path."""
    try:
        if os.path.samefile(a, b):
            return True
    except (OSError, ValueError):
        pass
    return _resolved(a) == _resolved(b) or _absolute(a) == _absolute(b)


def _inside(path: Path, folder: Path) -> bool:
    """True if `path` is `folder` or lies under it, by the path as given or resolved."""
    return any(p == f or f in p.parents for p in (_absolute(path), _resolved(path))
               for f in (_absolute(folder), _resolved(folder)))


def check_not_input(output: Path, inputs: Iterable[str | os.PathLike], folder: bool, what: str = "output") -> None:
    """LightvidError if writing `output` (a file, or a folder replaced as a whole) would overwrite an input."""
    for item in inputs:
        item = Path(item)
        if is_same_file(output, item) or (folder and _inside(item, output)):
            where = "is" if is_same_file(output, item) else "holds"
            raise LightvidError(f"{shown(output)}: the {what} {where} the input {shown(item)}; writing it would "
                                "destroy the input, choose another output path")


def check_not_current_folder(output: Path, given: str) -> None:
    """LightvidError for an output that is the current folder, one of its parents or the root (`.`, `..`, `/`)."""
    if output.name in ("", ".", ".."):
        bad = True
    else:
        cwd, resolved = _resolved(Path.cwd()), _resolved(output)
        bad = resolved == cwd or resolved in cwd.parents
    if bad:
        raise LightvidError(f"{shown(given)}: is the current folder, one of its parents or the root; name a new "
                            "file or a new folder for the output")


def _pathconf(folder: Path, name: str, default: int) -> int:
    try:
        value = os.pathconf(folder, name)
    except (OSError, ValueError, AttributeError):
        return default
    return value if value and value > 0 else default


def check_name_length(path: Path) -> None:
    """LightvidError if a name in `path` is longer than its filesystem allows (NAME_MAX of the deepest existing
    folder above it), or `path` as given, with a temporary name's margin, is longer than PATH_MAX. Every name is
    measured before anything below it is looked up (a `stat` of an overlong name raises ENAMETOOLONG)."""
    absolute = _absolute(path)
    folder, inside = Path(absolute.anchor), True
    name_max = _pathconf(folder, "PC_NAME_MAX", 255)
    for part in absolute.parts[1:]:
        size = len(os.fsencode(part))
        if size > name_max:
            raise LightvidError(f"output name {shown(part[:40])}... is {size} bytes long; this filesystem allows "
                                f"at most {name_max}")
        if inside:  # still walking existing folders: the next name is on their filesystem
            try:
                inside = stat.S_ISDIR(os.stat(folder / part).st_mode)
            except OSError:
                inside = False
            if inside:
                folder = folder / part
                name_max = _pathconf(folder, "PC_NAME_MAX", 255)
    path_max = _pathconf(folder, "PC_PATH_MAX", 4096)
    size = len(os.fsencode(os.fspath(path)))
    if size + TEMP_PATH_MARGIN >= path_max:
        raise LightvidError(f"output path {shown(os.fspath(path)[:40])}... is {size} bytes long; this system "
                            f"allows at most {path_max - 1 - TEMP_PATH_MARGIN} for an output")
