"""Output paths of the commands, checked before any long work starts.

Writability is tested by creating (and removing) a temp file in the nearest existing directory:
``os.access`` answers yes for root even where every write fails (``/sys``, ``/proc``, read-only mounts).
Nothing else is created here.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import click

from ltrsched.errors import UserError
from ltrsched.inputs import special_kind


def _blocker(directory: Path) -> str | None:
    """Why ``directory`` cannot be used or created as a writable directory, or None if it can."""
    path = directory.absolute()
    for existing in (path, *path.parents):
        if existing.exists():
            break
        if existing.is_symlink():  # creating the directory would fail ("File exists"), after the command's work
            return f"{existing} is a symbolic link to nothing (a missing target, or a loop)"
    if not existing.is_dir():
        return f"{existing} is a file, not a directory"
    try:
        fd, probe = tempfile.mkstemp(prefix=".ltrsched-write-test-", dir=existing)
    except OSError as exc:
        return f"{existing} is not writable ({exc.strerror or exc})"
    os.close(fd)
    try:
        os.unlink(probe)
    except OSError:
        pass
    return None


def check_out_dir(path: str | Path, option: str = "--out", files: tuple[str, ...] = (),
                  dirs: tuple[str, ...] = ()) -> Path:
    """Raise :class:`UserError` unless ``path`` is, or can be created as, a writable directory in which the
    command can write its ``files`` and ``dirs`` (names relative to ``path``): none of ``files`` may be a
    directory and none of ``dirs`` a file, found before the command's work rather than after it."""
    path = Path(path)
    problem = _blocker(path)
    if problem:
        raise UserError(f"{option} {path}: {problem}")
    for name in files:
        if (path / name).is_dir():
            raise UserError(f"{option} {path}: {path / name} is a directory, where the command writes a file")
    for name in dirs:
        problem = _blocker(path / name)
        if problem:
            raise UserError(f"{option} {path}: {problem}")
    return path


def check_out_file(path: str | Path, option: str = "--out", suffix: str | None = None) -> Path:
    """Raise :class:`UserError` unless ``path`` can be written as a file (ending in ``suffix``, e.g. ".json", in any
    case: ``T.JSON`` was told it "must be a .json file", where ``-w W.PARQUET`` and ``--cdf X.PNG`` are read)."""
    path = Path(path)
    if suffix is not None and path.suffix.lower() != suffix:
        raise UserError(f"{option} must be a {suffix} file, got {path}")
    if path.is_dir():
        raise UserError(f"{option} {path}: a directory, not a file")
    kind = special_kind(path)
    if kind:  # (checked before the work: the write renames a new file over the path, replacing e.g. /dev/null)
        raise UserError(f"{option} {path}: {kind}, not a regular file, which the output would replace; give a "
                        "regular file's path")
    problem = _blocker(path.parent)
    if problem:
        raise UserError(f"{option} {path}: {problem}")
    return path


class OutFile(click.Path):
    """A command option naming a file the command writes, as a :class:`~pathlib.Path`. A value that ends in a
    slash (``--plot x.png/``, ``x.png/.``) names a directory, meant or mistyped: a usage error (one line, exit 2).
    Before, pathlib dropped the slash and the file was written as ``x.png``."""

    def __init__(self) -> None:
        super().__init__(dir_okay=False, path_type=Path)

    def convert(self, value, param, ctx):
        text = os.fspath(value) if isinstance(value, (str, os.PathLike)) else value
        if isinstance(text, str) and text.endswith(("/", "/.")):  # (os.sep is "/" here; "x/." is "x" to pathlib)
            ending = "/." if text.endswith("/.") else "/"
            self.fail(f"{text!r} ends in {ending!r}, as a directory's path does; give the path of the file to write",
                      param, ctx)
        return super().convert(value, param, ctx)


def check_inputs_kept(inputs: dict[str, str | Path | None], files: tuple[Path, ...] = (),
                      dirs: tuple[Path, ...] = ()) -> None:
    """Raise :class:`UserError` if an input file would be written over: ``inputs`` maps an option to the path
    it names (a value that is not a file, e.g. a built-in name or None, is skipped); ``files`` are the files the
    command writes, ``dirs`` directories whose files it may replace or remove. Paths compare resolved
    (``./x``, ``a/../x`` and symbolic links name one file)."""
    for option, value in inputs.items():
        if value is None or not Path(value).is_file():
            continue
        source = _resolved(value, option)
        for path in files:
            if source == _resolved(path, "the output"):
                raise UserError(f"{option} {value} would be overwritten by the output {path}: write the output elsewhere")
        for directory in dirs:
            if source.is_relative_to(_resolved(directory, "the output directory")):
                raise UserError(f"{option} {value} lies in {directory}, whose files the command replaces: "
                                "move the input or write the output elsewhere")


def check_outputs_distinct(outputs: list[tuple[str, str | Path | None]]) -> None:
    """Raise :class:`UserError` if two of a command's outputs name one file: ``outputs`` pairs what writes each (an
    option, e.g. ``--trace``) with its path (None: not written). Paths compare resolved; the later write replaced
    the earlier one (``simulate -o RUN --trace RUN/summary.json`` left a trace where the run's summary was)."""
    seen: dict[Path, str] = {}
    for what, path in outputs:
        if path is None:
            continue
        key = _resolved(path, what)
        if key in seen:
            raise UserError(f"{what} {path} is where {seen[key]} writes too: give each output its own name")
        seen[key] = what


def _resolved(path: str | Path, what: str) -> Path:
    """``path`` resolved (symbolic links followed); one-line :class:`UserError` for a link that leads back to itself
    (``Path.resolve`` raises RuntimeError: a traceback)."""
    try:
        return Path(path).resolve()
    except (RuntimeError, OSError) as exc:
        raise UserError(f"{what} {path}: cannot follow its symbolic links ({type(exc).__name__}: {exc}); "
                        "give a path that leads to a file") from None
