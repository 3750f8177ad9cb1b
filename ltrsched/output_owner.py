"""Which command's output a directory holds, so that no command writes its files into another command's.

``simulate -o``, ``replay -o`` and ``validate -o`` each write their own files into a directory. Pointed at a
directory holding another command's output they wrote beside it or over it: a validation's report and runs beside
a replay's run, a replay's run files beside a sweep's runs or a validation's report, a simulation over an engine
run (minutes of a GPU). Each asks :func:`check_output_owner` before any work: it names what the directory holds
and refuses it unless it is that command's own output (a rerun replaces it; ``validate`` resumes or replaces its
own, :mod:`ltrsched.validation.outdir`). A directory under another command's ``runs/`` (``validate -o VAL/runs``)
is refused alike. Files no command writes (the user's own) are not judged here.

Reads only, before the command's work; one place, so every command tells what it found in the same words.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ltrsched.errors import UserError

#: Files that mark a directory as one command's output, by kind (read from the commands that write them:
#: ``validate`` (:mod:`ltrsched.validation.outdir`), ``sweep``, ``capacity``, ``reproduce``, ``train``).
VALIDATION_FILES = ("validate-manifest.json", "validation.md", "validation.csv", "validation.png",
                    "step_time_ratio.csv", "own_speed.csv")
MARKERS = (
    ("validation", VALIDATION_FILES, "a validation (`ltrsched validate`: {found})"),
    ("sweep", ("sweep.csv",), "a sweep (`ltrsched sweep`: {found})"),
    ("capacity", ("capacity.md", "capacity.csv", "capacity-rates.csv"), "a capacity search (`ltrsched capacity`: {found})"),
    ("reproduction", ("REPRODUCTION.md",), "a reproduction (`ltrsched reproduce`: {found})"),
    ("predictor", ("predictor.json",), "a predictor checkpoint (`ltrsched train`: {found})"),
)
#: Kinds whose output is a tree of runs under ``runs/``: a directory inside it belongs to that output.
RUN_TREES = ("validation", "sweep", "capacity", "reproduction")
#: Kinds of a single run directory (``requests.parquet``, ``summary.json``, ``steps.parquet``).
RUN_KINDS = ("engine-run", "validation-engine-run", "cached-run", "simulated-run")


@dataclass(frozen=True)
class Held:
    """What a directory holds: ``kind`` (a name in :data:`MARKERS`, :data:`RUN_KINDS`, ``profile`` or
    ``cached-runs``) and ``what``, in words for an error line."""

    kind: str
    what: str


def held_output(out: str | Path) -> Held | None:
    """The command output ``out`` holds (None: none that a command of ltrsched writes, or no directory)."""
    out = Path(out)
    if not out.is_dir():
        return None
    for kind, names, what in MARKERS:
        found = [n for n in names if (out / n).exists()]
        if found:
            return Held(kind, what.format(found=", ".join(found[:2])))
    run = _run_kind(out)
    if run is not None:
        return run
    profile = next((p for p in sorted(out.glob("*.steps.parquet"))
                    if p.with_name(p.name[:-len(".steps.parquet")] + ".json").is_file()), None)
    if profile is not None:
        name = profile.name[:-len(".steps.parquet")]
        return Held("profile", f"a measured profile (`ltrsched profile`: {name}.json, {profile.name})")
    runs = out / "runs"
    first = next(runs.glob("*/summary.json"), None) if runs.is_dir() else None
    if first is not None and getattr(_run_kind(first.parent), "kind", None) == "cached-run":  # (else the user's runs)
        return Held("cached-runs", "cached runs (runs/, of a `sweep`, `capacity` or `reproduce`)")
    return None


def _run_kind(out: Path) -> Held | None:
    """The kind of run whose ``summary.json`` ``out`` holds (its ``meta`` says who made it), or None."""
    from ltrsched.results import read_summary_file

    try:
        meta = read_summary_file(out / "summary.json").get("meta")
    except (OSError, ValueError):  # none there, or not a run's
        return None
    meta = meta if isinstance(meta, dict) else {}
    command = meta.get("command")
    made = f" (`{command}`)" if isinstance(command, str) else ""
    if "host" in meta:  # the engine ran it (replay, a validation's engine run)
        if "validation" in meta or (isinstance(command, str) and command.startswith("ltrsched validate")):
            return Held("validation-engine-run", f"an engine run of a validation{made}")
        return Held("engine-run", f"a run of the engine{made}")
    if "run_hash" in meta:
        return Held("cached-run", "a cached run of a `sweep`, `capacity` or `reproduce` (its runs/<hash>)")
    return Held("simulated-run", f"a simulated run{made or ' (`ltrsched simulate`)'}")


def _inside_run_tree(out: Path) -> tuple[Path, Held] | None:
    """The output (directory, what it holds) whose ``runs/`` tree ``out`` lies in, or None."""
    try:
        path = out.resolve()
    except (OSError, RuntimeError):
        return None
    for at in (path, *path.parents):  # (``validate -o VAL/runs`` too)
        if at.name == "runs":
            held = held_output(at.parent)
            if held is not None and held.kind in RUN_TREES:
                return at.parent, held
    return None


def check_output_owner(out: str | Path, command: str, accepts: tuple[str, ...], option: str = "--out") -> Held | None:
    """One-line :class:`UserError` if ``out`` holds another command's output than ``command``'s own kinds
    ``accepts`` (e.g. ``replay`` accepts ``engine-run``, its own run, which a rerun replaces), or lies inside
    another command's ``runs/``. Returns what it holds (None: nothing of a command's)."""
    out = Path(out)
    held = held_output(out)
    if held is not None and held.kind not in accepts:
        verb = "replace" if held.kind in RUN_KINDS and command in ("simulate", "replay") else "mix with"
        raise UserError(f"{option} {out} holds {held.what}, which this `{command}` would {verb}: give another "
                        f"{option}, or move that output away first")
    inside = _inside_run_tree(out)
    if inside is not None:
        root, owner = inside
        raise UserError(f"{option} {out} lies in the runs/ of {root}, which holds {owner.what}: this `{command}` "
                        f"would mix with it; give an {option} outside it")
    return held


#: The ``format`` of a step-time profile JSON (``ltrsched.sim.profiles.io.FORMAT``).
PROFILE_FORMAT = "ltrsched-step-time-profile"


def check_profile_out(path: str | Path, option: str = "--out") -> None:
    """One-line :class:`UserError` if ``profile -o PATH`` would write over a file that is not a profile
    (``-o RUN/summary.json`` replaced a run's summary, ``-o VAL/validate-manifest.json`` a validation's manifest), or
    into another command's ``runs/``. A profile there (a rerun) is replaced."""
    import json

    path = Path(path)
    if path.is_file():
        try:
            doc = json.loads(path.read_bytes())
        except (OSError, ValueError):
            doc = None
        if not (isinstance(doc, dict) and doc.get("format") == PROFILE_FORMAT):
            held = held_output(path.parent)
            whose = f", a file of {held.what}" if held is not None else ""
            raise UserError(f"{option} {path} exists and is not a step-time profile{whose}: `profile` would write "
                            f"over it; give another {option}, or move that file away first")
    inside = _inside_run_tree(path.parent)
    if inside is not None:
        root, owner = inside
        raise UserError(f"{option} {path} lies in the runs/ of {root}, which holds {owner.what}: `profile` would mix "
                        f"with it; give an {option} outside it")

