"""The output directory of ``ltrsched validate``: a rerun replaces or resumes the validation there, never mixes with it.

A validation records what it writes in ``OUT/validate-manifest.json`` (its command, its run directories)
before its first engine run. A later validation into the same ``--out`` removes exactly what that manifest
lists (the files :meth:`RunResult.save` writes in each listed run directory, and the report files) before
it writes anything, so ``OUT/runs`` never holds two validations' runs for a reader that globs them (e.g.
``ltrsched real-model-results``), and no old report stands beside new runs if the new one stops midway.
Files under ``OUT/runs`` or report files that no manifest records (an earlier ltrsched's validation, a
sweep's runs, the user's own files) are never deleted: the command refuses the directory instead, before
the engine starts, asking for a new ``--out``.

The manifest also records the validation's arguments (:func:`ltrsched.validation.resume.validation_arguments`)
and whether it finished (its report written). A validation run again with the same arguments after one that
did not finish resumes it instead (:func:`resume_validation`): the engine runs it completed stay, everything
else it wrote goes (:mod:`ltrsched.validation.resume`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ltrsched import atomic, strict_json
from ltrsched.errors import UserError
from ltrsched.results import RUN_FILES  # (the files a run directory holds)

#: The manifest file in a validation's output directory.
MANIFEST = "validate-manifest.json"
#: The lock a running validation holds in its output directory (an advisory ``flock``, released when it ends or
#: dies: :func:`ltrsched.experiments.runlock.run_lock`), so that a second ``validate`` there, which would resume the
#: same runs, is refused instead.
LOCK = ".validate.lock"
FORMAT = "ltrsched-validate-manifest"
FORMAT_VERSION = 2  # (1: no arguments, no finished flag; read, never resumed)
#: The report files ``validate`` writes in its output directory (:func:`ltrsched.validation.compare.write_report`).
REPORT_FILES = ("validation.md", "validation.csv", "validation.png", "step_time_ratio.csv", "own_speed.csv")


def _written(name: str, names: tuple[str, ...]) -> bool:
    """True if a file called ``name`` is one of ``names`` or the temp file of one (:func:`atomic.temp_path`,
    left behind by a killed process)."""
    return name in names or any(re.fullmatch(rf"\.{re.escape(n)}\.tmp\d+", name) for n in names)


@dataclass
class PreviousValidation:
    """The validation recorded in an output directory ``out``: its command, its run directories (relative
    to ``out``, e.g. ``runs/burst/fcfs/engine``), its arguments (None: recorded by a version before resuming)
    and whether it finished (wrote its report)."""

    out: Path
    command: str | None = None
    runs: tuple[str, ...] = ()
    arguments: dict | None = None
    finished: bool = True

    def run_dirs(self) -> list[Path]:
        return sorted(self.out / r for r in self.runs)

    def engine_runs_done(self) -> int:
        """Its engine runs that completed (their ``summary.json``, written last, exists)."""
        return sum(d.name.startswith("engine") and (d / "summary.json").is_file() for d in self.run_dirs())

    def files(self) -> list[Path]:
        """Its files that exist: the run files in its run directories, its report files (temp files too)."""
        found = []
        for directory in (*self.run_dirs(), self.out):
            names = RUN_FILES if directory != self.out else REPORT_FILES
            if directory.is_dir():
                found += [p for p in sorted(directory.iterdir()) if p.is_file() and _written(p.name, names)]
        return found


def _read_manifest(out: Path) -> PreviousValidation | None:
    path = out / MANIFEST
    if not path.exists():
        return None
    try:
        doc = strict_json.loads(path.read_bytes())  # (json.loads: a RecursionError traceback for '[' * 100000)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {path} ({exc}); give validate a new --out") from None
    runs = doc.get("runs") if isinstance(doc, dict) and doc.get("format") == FORMAT else None
    if not (isinstance(runs, list) and all(isinstance(r, str) and _is_run_path(r) for r in runs)):
        raise UserError(f"{path} is not a manifest of `ltrsched validate`; give validate a new --out")
    command = doc.get("command")
    arguments = doc.get("arguments")
    return PreviousValidation(out, command if isinstance(command, str) else None, tuple(runs),
                              arguments if isinstance(arguments, dict) else None, doc.get("finished") is not False)


def _is_run_path(text: str) -> bool:
    """A run directory's path relative to the output directory: under runs/, no '..' (a hand-edited manifest
    must not make validate delete files elsewhere)."""
    parts = PurePosixPath(text).parts
    return len(parts) >= 2 and parts[0] == "runs" and ".." not in parts and not PurePosixPath(text).is_absolute()


def check_validation_dir(out: Path) -> PreviousValidation | None:
    """The validation recorded in ``out`` (None if none). Raises :class:`UserError` if ``out`` holds report
    files or files under ``runs/`` that no recorded validation wrote: a new validation would stand beside
    them. Reads only; call before the engine starts."""
    previous = _read_manifest(out)
    ours = set(previous.files()) if previous is not None else set()
    foreign = [out / name for name in REPORT_FILES if (out / name).exists() and out / name not in ours]
    if (out / "runs").is_dir():
        foreign += sorted(p for p in (out / "runs").rglob("*")
                          if (p.is_symlink() or not p.is_dir()) and p not in ours)
    if foreign:
        more = f" and {len(foreign) - 1} more file(s)" if len(foreign) > 1 else ""
        raise UserError(f"--out {out} holds {foreign[0]}{more}, not written by a validation recorded in {MANIFEST} "
                        "(an earlier version's validation, or other files): a new validation would mix with them; "
                        "give a new --out, or remove them")
    return previous


def _remove_written(directory: Path, names: tuple[str, ...], temps_only: bool = False) -> None:
    """Remove the files called ``names`` in ``directory`` and their temp files (only those: ``temps_only``)."""
    if directory.is_dir():
        for p in directory.iterdir():
            if p.is_file() and _written(p.name, names) and not (temps_only and p.name in names):
                p.unlink(missing_ok=True)


def _write_manifest(out: Path, runs: list[str], command: str, arguments: dict | None, finished: bool) -> None:
    record = {"format": FORMAT, "format_version": FORMAT_VERSION, "command": command, "runs": runs,
              "arguments": arguments, "finished": finished}
    atomic.write_text(out / MANIFEST, strict_json.dumps(record, indent=2) + "\n")


def replace_validation(out: Path, previous: PreviousValidation | None, runs: list[Path], command: str,
                       arguments: dict | None = None) -> None:
    """Remove what ``previous`` wrote (its run files and report files, then its directories left empty), then
    record the new validation, unfinished: its command, ``runs`` (the run directories it is about to write) and
    ``arguments``."""
    if previous is not None:
        for path in previous.files():
            path.unlink(missing_ok=True)
        for directory in sorted(previous.run_dirs(), key=lambda p: len(p.parts), reverse=True):
            while directory != out / "runs" and directory.is_dir() and not any(directory.iterdir()):
                directory.rmdir()
                directory = directory.parent
    _write_manifest(out, [Path(r).relative_to(out).as_posix() for r in runs], command, arguments, False)


def resume_validation(out: Path, previous: PreviousValidation, keep: list[Path], command: str) -> None:
    """Resume ``previous`` (this same validation): keep the run directories ``keep`` (its complete engine
    runs), remove every other run's files and the report files (so no report of other runs stands beside them
    should this one stop too), and record it again as unfinished under ``command``."""
    keep = set(keep)
    for directory in previous.run_dirs():
        _remove_written(directory, RUN_FILES, temps_only=directory in keep)
    _remove_written(out, REPORT_FILES)
    _write_manifest(out, list(previous.runs), command, previous.arguments, False)


def finish_validation(out: Path) -> None:
    """Record in the manifest that the validation in ``out`` finished (its report is written). A one-line
    :class:`UserError` where the manifest is gone or is no manifest any more (``out`` removed or emptied while the
    validation ran, the file edited): it was a FileNotFoundError traceback once the report had been written."""
    path = out / MANIFEST
    try:
        doc = strict_json.loads(path.read_bytes())
        runs, command = doc["runs"], doc["command"]
    except (OSError, ValueError, TypeError, KeyError) as exc:
        reason = getattr(exc, "strerror", None) or f"{type(exc).__name__}: {exc}".splitlines()[0]
        raise UserError(f"cannot record the validation in {out} as finished: its {MANIFEST} was removed or changed "
                        f"while the validation ran ({reason}); the report is written, but what was removed with the "
                        f"manifest is lost: remove {out} and run the validation again") from None
    _write_manifest(out, runs, command, doc.get("arguments"), True)
