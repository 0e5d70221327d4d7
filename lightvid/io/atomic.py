"""Atomic output: a file or a folder appears at its final path complete, or not at all.

Writers produce their output under a temporary name in the target's own directory (same filesystem,
so the final `os.replace` / `os.rename` is atomic), fsync it, then move it into place. Any exception
(including KeyboardInterrupt) deletes the temporary output and leaves an existing target untouched.

Several outputs of one command (a video and its GIF preview) land together or not at all: `atomic_outputs`
gives each its temporary path, and only when every writer has finished are they all moved into place; a failure
or a Ctrl-C while they land puts back what was there before. Temporary names keep at most the first
TEMP_STEM characters of the target's name, so a name the filesystem accepts always has a temporary one too.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from lightvid.errors import LightvidError

TEMP_STEM = 32  # characters of the target's name kept in a temporary name


def shown(path) -> str:
    """`path` as text for a one-line message: a name with a newline, another control character or undecodable
    bytes is shown escaped (\\n, \\udcff), any other name as it is."""
    text = os.fspath(path) if isinstance(path, os.PathLike) else str(path)
    text = text if isinstance(text, str) else os.fsdecode(text)
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


def _fsync_path(path: Path) -> None:
    """fsync a file or a directory entry table (best effort for folders and where a filesystem cannot fsync;
    a file's failed fsync, e.g. ENOSPC or EIO, means its data may be lost and is raised)."""
    is_dir = path.is_dir()
    flags = os.O_RDONLY | (os.O_DIRECTORY if is_dir and hasattr(os, "O_DIRECTORY") else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as e:
        if not is_dir and e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EROFS):
            raise
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


def _prepare_parent(path: Path, created: list[Path] | None = None) -> Path:
    """Create `path`'s folder if needed; the folders made are appended to `created` (outermost first)."""
    parent = path.parent
    missing = [p for p in (parent, *parent.parents) if not p.exists()][::-1]
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise LightvidError(f"{shown(path)}: cannot create the output folder {shown(parent)} ({e.strerror})") from None
    if created is not None:
        created.extend(p for p in missing if p not in created)
    return parent


@contextlib.contextmanager
def _interrupts_deferred() -> Iterator[list]:
    """Hold Ctrl-C (SIGINT) back while outputs land: the yielded list gets an entry per Ctrl-C, for the caller to
    act on. Only in the main thread and while Python's default handler is installed; elsewhere a no-op."""
    pending: list = []
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield pending
        return
    previous = signal.signal(signal.SIGINT, lambda *_: pending.append(1))
    try:
        yield pending
    finally:
        signal.signal(signal.SIGINT, previous)


class AtomicOutputs:
    """The outputs of one command, written under temporary names and moved into place together.

    `file(path)` / `folder(path)` create and return a temporary file / folder beside `path`; `commit()` moves
    them all into place (each target's previous content is kept aside until all have landed, and put back if
    one fails or Ctrl-C comes while they land); `discard()` deletes every temporary. Use `atomic_outputs()`.
    """

    def __init__(self) -> None:
        self._pending: list[tuple[Path, Path, bool, bool]] = []  # (target, temporary, is_dir, overwrite)
        self._landed: list[tuple[Path, bool, Path | None]] = []  # (target, is_dir, its previous content aside)
        self._asides: list[Path] = []  # folders holding previous contents until the commit is done
        self._created: list[Path] = []  # output folders this command made, outermost first: removed on discard

    def file(self, path: str | os.PathLike) -> Path:
        """A new temporary file beside `path`: `.<stem>.<random>.tmp<suffix>` (same suffix, so format-sniffing
        writers such as PyAV and Pillow pick the format of `path`)."""
        path = Path(path)
        if path.is_dir():
            raise LightvidError(f"{shown(path)}: is a folder; expected a file path")
        parent = _prepare_parent(path, self._created)
        fd, name = _make_temp(path, lambda: tempfile.mkstemp(
            prefix=f".{path.stem[:TEMP_STEM]}.", suffix=f".tmp{path.suffix}", dir=parent))
        os.close(fd)
        self._pending.append((path, Path(name), False, False))
        return Path(name)

    def folder(self, path: str | os.PathLike, overwrite: bool = False) -> Path:
        """A new temporary folder beside `path`; `path` must be absent, empty, or `overwrite` set."""
        path = Path(path)
        check_dir_target(path, overwrite)
        parent = _prepare_parent(path, self._created)
        name = _make_temp(path, lambda: tempfile.mkdtemp(prefix=f".{path.name[:TEMP_STEM]}.", suffix=".tmp",
                                                         dir=parent))
        self._pending.append((path, Path(name), True, overwrite))
        return Path(name)

    def commit(self) -> None:
        """Check and fsync every temporary output, then move them all into place; on failure none is there."""
        for target, tmp, is_dir, overwrite in self._pending:
            if is_dir:
                for f in tmp.iterdir():
                    _fsync_path(f)
                check_dir_target(target, overwrite)  # the target may have appeared while we were writing
            elif not tmp.is_file() or tmp.stat().st_size == 0:
                raise LightvidError(f"{shown(target)}: the writer produced no data")
            os.chmod(tmp, _final_mode(target, is_dir))
            _fsync_path(tmp)
        keep_aside = len(self._pending) > 1  # one file replaces its target atomically: nothing to put back
        with _interrupts_deferred() as interrupted:
            try:
                while self._pending:
                    self._land(self._pending[0], keep_aside)
                    self._pending.pop(0)
                if interrupted and keep_aside:
                    raise KeyboardInterrupt
            except BaseException:
                self._roll_back()
                raise
        for parent in dict.fromkeys(target.parent for target, _, _ in self._landed):
            _fsync_path(parent)
        self._landed.clear()
        self._created.clear()  # they hold the outputs now
        self._drop_asides()
        if interrupted:  # one output, complete and in place: the interrupt now ends the command
            raise KeyboardInterrupt

    def discard(self) -> None:
        """Delete every temporary output not yet in place (and any previous content kept aside)."""
        while self._pending:
            _, tmp, is_dir, _ = self._pending.pop()
            if is_dir:
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)
        self._drop_asides()
        for folder in reversed(self._created):  # innermost first; one that holds anything else stays
            with contextlib.suppress(OSError):
                folder.rmdir()
        self._created.clear()

    def _aside(self, target: Path) -> Path:
        folder = Path(_make_temp(target, lambda: tempfile.mkdtemp(prefix=f".{target.name[:TEMP_STEM]}.",
                                                                  suffix=".old", dir=target.parent)))
        self._asides.append(folder)
        return folder / "previous"

    def _land(self, entry: tuple[Path, Path, bool, bool], keep_aside: bool) -> None:
        target, tmp, is_dir, _ = entry
        aside = None
        if is_dir and target.exists():  # empty or overwrite (checked); a folder cannot be replaced in one rename
            aside = self._aside(target)
            os.rename(target, aside)
        elif not is_dir and keep_aside and os.path.lexists(target):
            aside = self._aside(target)
            try:
                os.link(target, aside, follow_symlinks=False)  # keeps `target` in place until os.replace
            except OSError:
                os.rename(target, aside)
        try:
            if is_dir:
                os.rename(tmp, target)
            else:
                os.replace(tmp, target)
        except BaseException:
            if aside is not None and os.path.lexists(aside) and not os.path.lexists(target):
                os.rename(aside, target)
            raise
        self._landed.append((target, is_dir, aside))

    def _roll_back(self) -> None:
        """Take out what this commit moved into place and put each target's previous content back. A previous
        content that cannot be put back stays where it was kept aside (never deleted), and the user is told where."""
        while self._landed:
            target, is_dir, aside = self._landed.pop()
            try:
                if is_dir:
                    shutil.rmtree(target)
                else:
                    target.unlink(missing_ok=True)
                if aside is not None:
                    os.rename(aside, target)
            except OSError as e:
                if aside is not None and os.path.lexists(aside):
                    self._asides.remove(aside.parent)  # kept: _drop_asides must not delete it
                    print(f"lightvid: could not put the previous {shown(target)} back ({e.strerror}); it is kept "
                          f"at {shown(aside)}", file=sys.stderr)

    def _drop_asides(self) -> None:
        while self._asides:
            shutil.rmtree(self._asides.pop(), ignore_errors=True)


def _make_temp(target: Path, make):
    try:
        return make()
    except OSError as e:
        raise LightvidError(f"{shown(target)}: cannot write into {shown(target.parent)} ({e.strerror})") from None


@contextlib.contextmanager
def atomic_outputs() -> Iterator[AtomicOutputs]:
    """Outputs that land together or not at all (see `AtomicOutputs`): on leaving the block without an
    exception every temporary output is moved into place; on any exception (KeyboardInterrupt included) every
    temporary is deleted and every target is left as it was.

        with atomic_outputs() as outputs:
            encode(frames, outputs.file("clip.mp4"))
            encode_gif(frames, outputs.file("clip.gif"))
    """
    outputs = AtomicOutputs()
    try:
        yield outputs
        outputs.commit()
    except BaseException:
        outputs.discard()
        raise


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path` (same suffix); on success move it to `path` atomically.

    The temporary name is `.<stem>.<random>.tmp<suffix>`, so format-sniffing writers (PyAV, Pillow)
    pick the same format as for `path`. On success the file is fsynced and `os.replace`d onto `path`
    (replacing an existing file); on any exception it is deleted and `path` is left as it was.

        with atomic_write("out.mp4") as tmp:
            encode(frames, tmp)
    """
    with atomic_outputs() as outputs:
        yield outputs.file(path)


def check_dir_target(path: Path, overwrite: bool) -> None:
    """LightvidError unless `path` can become a folder: absent, empty, or replaceable (`overwrite`)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise LightvidError(f"{shown(path)}: exists and is not a folder; expected a folder")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise LightvidError(f"{shown(path)}: folder exists and is not empty; choose another path or overwrite it")


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success rename it to `path`.

    An existing non-empty folder at `path` is a LightvidError unless `overwrite=True`, in which case
    it is replaced (the old folder is moved aside, the new one renamed in, the old one deleted); an
    empty one is replaced silently. On any exception the temporary folder is deleted and `path` is
    left as it was. The check is made before yielding, so a refused target costs no work.
    """
    with atomic_outputs() as outputs:
        yield outputs.folder(path, overwrite)
