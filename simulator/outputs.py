"""Writing outputs whole or not at all: the one home of sasim's atomic writes.

Every file sasim writes goes through :func:`atomic_write` (a temporary name beside the
target, then a rename); a set of outputs that belong together (``sasim run --out DIR`` and
its ``--timeline``/``--plot`` files) goes through :class:`OutputSet`, which builds everything
under temporary names and puts it in place only when all of it succeeded
(docs/getting-started.md, "Files a run writes"). Temporary names carry the writer's process
id, so a later writer removes what a killed one left behind (:func:`remove_stale`).

Reports are strict JSON (:func:`json_text`): infinities and NaN are written as ``null``.

Like :mod:`simulator.errors`, this module imports nothing else from sasim, so every layer may
use it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import shutil
import stat
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from simulator.errors import SasimError

__all__ = ["OutputError", "TEMP_PREFIX", "file_mode", "dir_mode", "temp_name",
           "atomic_write", "regular_target", "check_directory", "json_text", "finite",
           "flatten_scalars", "remove_stale", "OutputSet", "outputs_final", "start_command"]

#: Every temporary file or directory sasim creates starts with this, then ``<pid>.``.
TEMP_PREFIX = ".sasim-tmp."


class OutputError(SasimError):
    """An output cannot be written where it was asked for (a file where a directory goes, a
    parent that is not writable, a directory that is not sasim's to replace)."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode ``open()`` gives a new file under the current umask."""
    return 0o666 & ~_umask()


def dir_mode() -> int:
    """The mode ``mkdir()`` gives a new directory under the current umask."""
    return 0o777 & ~_umask()


def temp_name(name: str) -> str:
    """A temporary name for ``name``: ``.sasim-tmp.<pid>.<random>.<name>`` (it keeps the
    suffix, so a figure's format can still be read from it)."""
    return f"{TEMP_PREFIX}{os.getpid()}.{os.urandom(4).hex()}.{name[-100:]}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale(folder: Path) -> None:
    """Remove the temporaries in ``folder`` left by sasim processes that no longer run
    (killed with SIGKILL, or a power loss). Errors are ignored: this is housekeeping."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        if not entry.name.startswith(TEMP_PREFIX):
            continue
        pid = entry.name[len(TEMP_PREFIX):].split(".", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid() or _pid_alive(int(pid)):
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)


def _cannot(path: Path, exc: OSError | RuntimeError, flag: str = "") -> OutputError:
    where = f"{flag} {path}" if flag else str(path)
    return OutputError(f"{where}: cannot write: {getattr(exc, 'strerror', None) or exc}")


def _existing_ancestor(path: Path, flag: str) -> Path:
    """The nearest ancestor of ``path`` that exists (temporaries go there, so that nothing,
    not even a missing parent directory, is created before the outputs are complete)."""
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(f"{flag} {path}: cannot write: {parent} is not a directory")
    return parent


def regular_target(path: Path, flag: str = "") -> Path:
    """Where an output file ``path`` is written: the file a symbolic link names (the link is
    kept), refusing a directory and anything that is not a regular file (a device, a named
    pipe, a socket): renaming over it would replace it, ``/dev/null`` included."""
    where = f"{flag} {path}" if flag else str(path)
    try:
        target = Path(os.path.realpath(path)) if path.is_symlink() else path
        mode = target.stat().st_mode
    except FileNotFoundError:
        return target
    except OSError as exc:  # a name too long, a loop of links, ...
        raise _cannot(path, exc, flag) from None
    if stat.S_ISDIR(mode):
        raise OutputError(f"{where}: is a directory")
    if not stat.S_ISREG(mode):
        raise OutputError(f"{where}: not a regular file (a device, a named pipe or a socket): "
                          f"give the path of a file to write")
    return target


def atomic_write(path: str | Path, data: bytes | str | Callable[[BinaryIO], None], *,
                 sync: bool = True) -> None:
    """Write ``path`` whole or not at all, with the mode ``open()`` would give it.

    ``data`` is the content (text is UTF-8), or a function writing it to a binary file.
    The file is written under a temporary name in the same directory, flushed to disk
    (``sync``) and renamed over ``path``; on any failure the temporary is removed. Missing
    parent directories are created. Raises :class:`OutputError` when it cannot write.
    """
    path = regular_target(Path(path))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _cannot(path, exc) from None
    tmp = path.parent / temp_name(path.name)
    try:
        with open(tmp, "xb") as fh:
            if callable(data):
                data(fh)
            else:
                fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            if sync:
                fh.flush()
                os.fsync(fh.fileno())
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _cannot(path, exc) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def finite(value: Any) -> Any:
    """``value`` with every float infinity or NaN (at any depth) replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def json_text(value: Any, *, indent: int | None = 2) -> str:
    """Strict JSON text (RFC 8259) ending in a newline: infinities and NaN become ``null``
    (docs/getting-started.md says which fields can be null)."""
    return json.dumps(finite(value), indent=indent, allow_nan=False) + "\n"


def flatten_scalars(record: Mapping[str, Any], skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """The scalars of ``record`` under their names, its mappings of scalars flattened to
    ``name.key`` (``counters.idle``, ``energy_breakdown_pj.dram``); lists, deeper mappings
    and the keys in ``skip`` are left out. The columns of layers.csv and results.csv."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        if key in skip:
            continue
        if isinstance(value, Mapping):
            out.update({f"{key}.{k}": v for k, v in value.items()
                        if not isinstance(v, Mapping | list)})
        elif not isinstance(value, list):
            out[key] = value
    return out


# --- one rename that replaces a directory --------------------------------------------------

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap ``a`` and ``b`` in one step (Linux renameat2 RENAME_EXCHANGE); False when the
    system or file system cannot."""
    import ctypes  # only here: a run that replaces nothing does not pay for the import

    try:
        libc = ctypes.CDLL(None, use_errno=True)  # the C library the interpreter runs on
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                          ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _replace_dir(staging: Path, target: Path) -> None:
    """Put the directory ``staging`` at ``target``, replacing the directory there."""
    if not target.exists():
        os.replace(staging, target)
        return
    if _exchange(staging, target):
        shutil.rmtree(staging, ignore_errors=True)  # now the previous directory
        return
    old = target.parent / temp_name(target.name)
    os.replace(target, old)
    try:
        os.replace(staging, target)
    except BaseException:
        os.replace(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def check_directory(target: str | Path, marker: str, flag: str = "--out") -> Path:
    """Check, without writing anything, that ``target`` may become (or be replaced by) an
    output directory whose kind is known by its ``marker`` file; returns its absolute path
    (a symbolic link resolved). Raises :class:`OutputError` for a file, a directory that is
    neither empty nor holds ``marker``, one that holds the current directory, or a place
    that cannot be written."""
    if not str(target).strip():
        raise OutputError(f"{flag}: an empty path (give the directory to write)")
    try:
        return _check_directory(Path(target), marker, flag)
    except (OSError, RuntimeError) as exc:  # a name too long, a loop of links (Python
        # before 3.13 reports a loop met by Path.resolve as a RuntimeError), ...
        raise _cannot(Path(target), exc, flag) from None


def _check_directory(target: Path, marker: str, flag: str) -> Path:
    target = Path(target).absolute()
    if target.is_symlink():  # the output goes where the link points
        target = target.resolve()
    if target.exists() and not target.is_dir():
        raise OutputError(f"{flag} {target}: exists and is not a directory")
    if Path.cwd().resolve().is_relative_to(target.resolve()):
        raise OutputError(f"{flag} {target}: holds the current directory, so it is not "
                          f"replaced: choose a directory below it")
    if target.is_dir():
        try:
            names = os.listdir(target)
        except OSError as exc:
            raise OutputError(f"{flag} {target}: cannot read: {exc.strerror}") from None
        if names and marker not in names:
            raise OutputError(f"{flag} {target}: exists and holds no {marker} (it is not "
                              f"an earlier output, so it is not replaced): choose a new "
                              f"or empty directory")
    where = _existing_ancestor(target, flag)
    if not os.access(where, os.W_OK | os.X_OK):
        raise OutputError(f"{flag} {target}: cannot write in {where}: permission denied")
    return target


#: Whether this process's command has begun putting its outputs in place: from then on a
#: stop signal must not turn it into a stopped one (half its outputs renamed, or all of them
#: and status 143).
_FINAL = [False]


def outputs_final() -> bool:
    """True once a command began committing its outputs (:meth:`OutputSet.commit`): the CLI's
    signal handlers then let the command finish instead of stopping it."""
    return _FINAL[0]


def start_command() -> None:
    """Forget an earlier command's commit (a process that runs several, as tests do)."""
    _FINAL[0] = False


class OutputSet:
    """Outputs that appear together or not at all.

    :meth:`directory` and :meth:`file` return temporary paths to write into (beside their
    targets, in the nearest directory that exists, so a missing parent is created only at
    the end); :meth:`commit` renames them into place; leaving the ``with`` block without a
    commit (an error, SIGTERM turned into an exception by the CLI) removes them all. A file
    inside a staged directory is written inside its staging copy.

    An existing directory is replaced (not merged with) only when it is empty or holds the
    ``marker`` file of an earlier output of the same kind; any other directory is refused.
    """

    def __init__(self) -> None:
        self._dirs: list[tuple[Path, Path]] = []   # (staging, target)
        self._files: list[tuple[Path, Path]] = []
        self._flags: dict[Path, str] = {}         # target -> the flag that named it
        self._reserved: dict[Path, str] = {}      # a staged directory's own files -> flag

    def __enter__(self) -> OutputSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()

    def directory(self, target: str | Path, marker: str, flag: str = "--out",
                  names: Iterable[str] = (), inputs: Iterable[str | Path] = ()) -> Path:
        """A staging directory that becomes ``target`` on commit (see
        :func:`check_directory` for the directories refused). ``names``: the files the
        command writes in it besides ``marker`` (no other output may take them);
        ``inputs``: files the command reads, refused when they lie inside ``target`` (its
        replacement would delete them)."""
        target = check_directory(target, marker, flag)
        for given in inputs:
            path = Path(given).absolute()
            if path.is_file() and path.resolve().is_relative_to(target.resolve()):
                raise OutputError(f"{flag} {target}: holds the input {given}, which replacing "
                                  f"the directory would delete: choose another directory")
        for name in (marker, *names):
            self._reserved[target / name] = flag
        where = _existing_ancestor(target, flag)
        remove_stale(where)
        staging = where / temp_name(target.name)
        try:
            staging.mkdir(mode=0o700)
        except OSError as exc:
            raise OutputError(f"{flag} {target}: cannot write in {where}: "
                              f"{exc.strerror or exc}") from None
        self._dirs.append((staging, target))
        return staging

    def file(self, target: str | Path, flag: str) -> Path:
        """A temporary path that becomes ``target`` on commit (it keeps the suffix); a
        target another output of the command already takes is refused."""
        if not str(target).strip():
            raise OutputError(f"{flag}: an empty path (give the file to write)")
        target = regular_target(Path(target).absolute(), flag)
        clash = self._flags.get(target) or self._reserved.get(target)
        if clash is not None:
            raise OutputError(f"{flag} {target}: {clash} writes that file too: choose another "
                              f"name")
        self._flags[target] = flag
        try:
            for staging, folder in self._dirs:
                if target.is_relative_to(folder):
                    inner = staging / target.relative_to(folder)
                    inner.parent.mkdir(parents=True, exist_ok=True)
                    inner.touch(exist_ok=False)
                    return inner
            where = _existing_ancestor(target, flag)
            remove_stale(where)
            tmp = where / temp_name(target.name)
            tmp.touch(exist_ok=False)
        except OSError as exc:
            raise _cannot(target, exc, flag) from None
        self._files.append((tmp, target))
        return tmp

    def commit(self) -> None:
        """Put every output in place (directories with their normal mode).

        A stop signal that comes while the outputs are renamed, or after, is ignored by the
        CLI (:func:`outputs_final`): the outputs are then all in place and the command ends
        normally, never half of them or all of them with a "stopped" status."""
        _FINAL[0] = True
        try:
            for tmp, target in self._files:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.chmod(tmp, file_mode())
                os.replace(tmp, target)
            for staging, target in self._dirs:
                for root, dirs, files in os.walk(staging):
                    os.chmod(root, dir_mode())
                    for name in files:
                        os.chmod(os.path.join(root, name), file_mode())
                target.parent.mkdir(parents=True, exist_ok=True)
                _replace_dir(staging, target)
        except OSError as exc:
            raise _cannot(target, exc) from None
        self._dirs.clear()
        self._files.clear()

    def discard(self) -> None:
        """Remove every temporary not yet committed."""
        for tmp, _ in self._files:
            with contextlib.suppress(OSError):
                tmp.unlink()
        for staging, _ in self._dirs:
            shutil.rmtree(staging, ignore_errors=True)
        self._dirs.clear()
        self._files.clear()
