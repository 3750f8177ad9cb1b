"""Finding saved runs (``simulate --out``, ``sweep``/``reproduce`` directories) and labelling them."""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

import polars as pl

from ltrsched.errors import UserError

#: What distinguishes one run's line in a plot (varying ones only are shown), by kind.
LINE_FIELDS = ("policy", "replicas", "router")
#: What distinguishes one panel row (the setting the lines are compared in).
SETTING_FIELDS = ("workload", "profile", "arrival", "rate", "seed", "scoring")


@dataclass
class SavedRun:
    """One run on disk: its directory, descriptive fields (policy, workload, rate...) and requests table."""

    path: Path
    fields: dict[str, Any]
    requests: pl.DataFrame
    details: dict[str, Any] = field(default_factory=dict)  # engine settings, to tell apart lines that look alike


def run_fields(meta: dict[str, Any]) -> dict[str, Any]:
    """Policy, cluster and setting fields of a run from its ``meta`` (a sweep run's spec first)."""
    spec = meta.get("run_spec") or {}
    fields = {k: spec.get(k, meta.get(k)) for k in ("workload", "profile", "arrival", "rate", "seed", "scoring")}
    fields["policy"] = spec.get("label") or spec.get("policy") or meta.get("policy", "?")
    fields["replicas"] = spec.get("replicas", meta.get("replicas")) or 1
    fields["router"] = spec.get("router", meta.get("router")) if fields["replicas"] > 1 else None
    return fields


#: Run-spec keys that never tell two runs' lines apart (names and bookkeeping).
_NOT_DETAILS = ("experiment", "setting", "label", "note", "record_steps")


def run_details(meta: dict[str, Any]) -> dict[str, Any]:
    """Every setting of a run beyond :func:`run_fields`: the engine configuration and the sweep run spec."""
    details = {**(meta.get("config") or {}), **(meta.get("run_spec") or {})}
    return {k: v for k, v in details.items() if k not in _NOT_DETAILS}


def run_label(meta: dict[str, Any]) -> str:
    """A short label of a run: its policy, and its cluster if it has several replicas."""
    f = run_fields(meta)
    return f["policy"] + (f" x{f['replicas']} {f['router']}" if f["replicas"] > 1 else "")


def _run_dirs(path: Path) -> list[Path]:
    if (path / "summary.json").is_file() and (path / "requests.parquet").is_file():
        return [path]
    runs = path / "runs"
    if runs.is_dir():
        found = sorted(d for d in runs.iterdir() if (d / "summary.json").is_file() and (d / "requests.parquet").is_file())
        if found:
            return found
    inner = _a_run_deeper(path) if path.is_dir() else None
    raise UserError(f"{path}: neither a run directory (summary.json + requests.parquet) nor a sweep/reproduce "
                    "directory with finished runs under runs/" + (
                        "" if inner is None else f"; it holds runs deeper down (e.g. {inner}): give their directories"))


def _a_run_deeper(directory: Path) -> Path | None:
    """The first run directory (summary.json + requests.parquet) 1 to 4 levels under ``directory`` (validate's
    runs/CASE/POLICY/{engine,sim}), or None: what a directory plot cdf cannot read holds."""
    for depth in range(1, 5):
        for summary in sorted(directory.glob("/".join(["*"] * depth) + "/summary.json")):
            if summary.is_file() and (summary.parent / "requests.parquet").is_file():
                return summary.parent
    return None


def _check_meta(meta: Any) -> None:
    """Raise ValueError where a summary's ``meta`` is not shaped as ltrsched writes it (what :func:`run_fields`
    and :func:`run_details` read: tables, and a whole replica count)."""
    if not isinstance(meta, dict):
        raise ValueError("its 'meta' is not a table")
    for key in ("run_spec", "config"):
        if not isinstance(meta.get(key) or {}, dict):
            raise ValueError(f"its meta {key!r} is not a table")
    replicas = (meta.get("run_spec") or {}).get("replicas", meta.get("replicas"))
    if replicas is not None and (isinstance(replicas, bool) or not isinstance(replicas, int)):
        raise ValueError(f"its replica count {replicas!r} is not a whole number")


#: Largest latency a plotted run may hold [s or s/token] (about 30,000 years; a simulated run's arrivals span less
#: than 1e8 s): values near float64's largest overflowed the CDF's axes (a traceback, or RuntimeWarnings).
MAX_PLOTTED_S = 1e12


def _check_metric_columns(requests: pl.DataFrame) -> None:
    """Raise ValueError where a column a CDF plots (latency per token [s/token], TTFT [s], TPOT [s/token]) does
    not read as numbers (e.g. text or lists in a foreign requests.parquet: an error only while drawing), or holds
    a finite value that is no latency: negative or above :data:`MAX_PLOTTED_S` (missing and non-finite values
    are requests that did not finish: left out of the plot)."""
    from ltrsched.plots.cdf import CDF_METRICS

    for metric in CDF_METRICS:
        if metric not in requests.columns:
            continue
        try:
            values = requests[metric].cast(pl.Float64)
        except pl.exceptions.PolarsError:
            values = None
        if values is None or values.dtype != pl.Float64:
            raise ValueError(f"its requests column {metric!r} holds {requests[metric].dtype}, not numbers")
        bad = values.filter(values.is_finite() & ((values < 0) | (values > MAX_PLOTTED_S)))
        if bad.len():
            raise ValueError(f"its requests column {metric!r} holds {bad.len()} value(s) outside [0, "
                             f"{MAX_PLOTTED_S:.0e}] (first: {bad[0]:g}), no latency")


@contextmanager
def polars_source(path: str | Path) -> Iterator[str | BinaryIO]:
    """``path`` as polars can open it: its text where that is UTF-8; a name holding bytes that are no UTF-8 (read as
    lone surrogates, '\\udcff') polars took for no path (a TypeError traceback, "Object does not have a .read()
    method"): then the file, opened here, by its descriptor's path (``/proc/self/fd/N``, Linux), else the open file
    itself (which polars reads whole). Raises OSError if that cannot be opened."""
    text = str(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        pass
    else:
        yield text
        return
    with open(path, "rb") as fh:
        by_fd = f"/proc/self/fd/{fh.fileno()}"
        yield by_fd if os.path.exists(by_fd) else fh


def read_plotted_columns(path: Path) -> pl.DataFrame:
    """The columns of a run's ``requests.parquet`` that a CDF reads (its metrics and ``finish_time``, where the file
    has them): the whole table of a 1,000,000-request run took 152 MB of memory (19 columns), these 32 MB, and a
    sweep's runs are all held until the figure is drawn."""
    from ltrsched.plots.cdf import CDF_METRICS

    with polars_source(path) as source:
        schema = pl.read_parquet_schema(source)
        if not isinstance(source, str):
            source.seek(0)
        return pl.read_parquet(source, columns=[c for c in (*CDF_METRICS, "finish_time") if c in schema])


def load_runs(paths: list[Path], notes: list[str] | None = None,
              check: Callable[[list[SavedRun]], None] | None = None) -> list[SavedRun]:
    """Every run under ``paths`` (run directories, or sweep/reproduce output directories). Of a sweep directory
    (one with a ``sweep.csv``) only the runs its ``sweep.csv`` lists (by their run hash, else by their settings and
    numbers: :class:`SweepListing`): runs an earlier sweep file wrote to the same ``--out`` are left out, and a line
    saying so is appended to ``notes`` (and one where rows without a run hash each matched several runs).
    ``check(runs)`` is called once every run's summary is read, before any requests table is (each run's ``requests``
    empty then): a refusal of what their fields make (too many panel rows or lines) reads no table (10,000 runs:
    15.7 s of CPU to read them first)."""
    from ltrsched.results import read_summary_file

    out, seen = [], set()
    for path in paths:
        path = Path(path)
        if not path.exists():
            raise UserError(f"{path}: no such directory")
        dirs = _run_dirs(path)
        rows = _sweep_rows(path) if len(dirs) > 1 or dirs[0] != path else None
        listing = SweepListing(rows) if rows is not None else None
        left_out = []
        for d in dirs:
            if d.resolve() in seen:  # the same run named twice (or a run and its sweep directory): one line
                continue
            try:
                data = read_summary_file(d / "summary.json")
                meta = data.get("meta") or {}
                _check_meta(meta)
                if listing is not None and not listing.lists(d, meta, data["summary"]):
                    left_out.append(d)  # (read only its summary: another sweep's run)
                    continue
            except (OSError, ValueError, pl.exceptions.PolarsError) as exc:
                raise _unreadable(d, exc) from None
            seen.add(d.resolve())
            out.append(SavedRun(d, run_fields(meta), pl.DataFrame(), run_details(meta)))
        if rows is not None and len(left_out) == len(dirs):
            raise UserError(f"{path / 'sweep.csv'}: none of the {len(dirs)} runs under {path / 'runs'} is one it "
                            "lists (rerun the sweep, or give the runs' directories)")
        if left_out and notes is not None:
            notes.append(f"note: {path}: left out {len(left_out)} run(s) under runs/ that its sweep.csv does not list "
                         f"(an earlier sweep's written to the same --out, e.g. {left_out[0].name}); give their "
                         "directories to draw them")
        if listing is not None and notes is not None:
            notes.extend(note for note in (listing.missing_note(path, dirs), listing.ambiguity_note(path)) if note)
    if check is not None:
        check(out)
    for run in out:
        try:
            run.requests = read_plotted_columns(run.path / "requests.parquet")
            _check_metric_columns(run.requests)
        except (OSError, ValueError, pl.exceptions.PolarsError) as exc:
            raise _unreadable(run.path, exc) from None
    return out


def _unreadable(run: Path, exc: BaseException) -> UserError:
    return UserError(f"{run}: cannot read the run ({type(exc).__name__}: {exc})")


#: sweep.csv's columns that name a run's settings, as its run spec holds them.
_SWEEP_KEYS = ("workload", "policy", "profile", "arrival", "rate", "seed", "replicas", "router")
#: sweep.csv's column holding each row's run hash (:meth:`~ltrsched.experiments.runspec.RunSpec.run_hash`, the run
#: cache's key): the name of the run's directory, ``runs/<run_hash>``. A sweep.csv written before it existed has none.
RUN_HASH_COLUMN = "run_hash"


class SweepListing:
    """Which runs under a sweep directory's ``runs/`` its ``sweep.csv`` (``rows``) lists: a row that names its run
    (:data:`RUN_HASH_COLUMN`) lists the run directory of that name; a row without one (a sweep.csv written before the
    column existed) lists every run whose settings and summary numbers it holds (:func:`_lists`), which cannot tell
    apart two runs alike in both (e.g. two sweep files' runs differing only in a setting sweep.csv has no column for,
    that gave the same numbers): :meth:`ambiguity_note` says where that happened."""

    def __init__(self, rows: list[dict[str, Any]]):
        self.hashes = {row[RUN_HASH_COLUMN] for row in rows if isinstance(row.get(RUN_HASH_COLUMN), str)}
        self.unnamed = [row for row in rows if not isinstance(row.get(RUN_HASH_COLUMN), str)]
        self.matched: dict[int, list[str]] = {}  # an unnamed row's index -> the run directories it matched

    def lists(self, run: Path, meta: dict[str, Any], summary: dict[str, Any]) -> bool:
        """Whether the run in directory ``run`` (its summary's ``meta`` and ``summary``) is one the sweep.csv lists."""
        if run.name in self.hashes:
            return True
        found = [i for i, row in enumerate(self.unnamed) if _lists(row, meta, summary)]
        for i in found:
            self.matched.setdefault(i, []).append(run.name)
        return bool(found)

    def missing_note(self, path: Path, dirs: list[Path]) -> str | None:
        """A ``note:`` line where rows name runs that are not among ``dirs`` (the finished runs under ``path``'s
        ``runs/``: removed since, or never finished), else None: the figure is drawn without them."""
        missing = sorted(self.hashes - {d.name for d in dirs})
        if not missing:
            return None
        return (f"note: {path}: {len(missing)} run(s) its sweep.csv lists are not under runs/ with their summary.json "
                f"and requests.parquet (e.g. {', '.join(missing[:3])}); drawn without them (rerun the sweep to compute "
                "them again)")

    def ambiguity_note(self, path: Path) -> str | None:
        """A ``note:`` line where rows without a run hash each matched more than one run (all drawn), else None."""
        alike = [runs for runs in self.matched.values() if len(runs) > 1]
        if not alike:
            return None
        return (f"note: {path}: its sweep.csv has no {RUN_HASH_COLUMN} column (an earlier version's), and {len(alike)} "
                f"of its rows each match more than one run under runs/ by settings and numbers (e.g. "
                f"{', '.join(alike[0][:3])}); all are drawn: rerun the sweep to write the column, or give the runs' "
                "directories")


def _sweep_rows(path: Path) -> list[dict[str, Any]] | None:
    """The rows of ``path``'s ``sweep.csv`` (the runs the sweep written last to ``path`` ran), or None where
    ``path`` has none (a reproduce directory, whose earlier experiments' runs belong to it)."""
    table = path / "sweep.csv"
    if not table.is_file():
        return None
    try:
        # (a hash of digits only read as a number: 0012... lost its zeros)
        return pl.read_csv(table, infer_schema_length=None, schema_overrides={RUN_HASH_COLUMN: pl.String}).to_dicts()
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise UserError(f"{table}: cannot read the sweep's table of runs ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''}); rerun the sweep, or give the runs' "
                        "directories") from None


def _same(a: Any, b: Any) -> bool:
    """Whether a sweep.csv cell and a run's value are one value (None alike; a float written and read back is
    equal; undefined NaN equals NaN)."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) and isinstance(b, (int, float)) and a != a:
        return b != b
    return a == b


def _lists(row: dict[str, Any], meta: dict[str, Any], summary: dict[str, Any]) -> bool:
    """Whether sweep.csv's ``row`` is the run of this ``meta`` and ``summary``: the same settings (a sweep writes
    a row's from its run spec) and the same value of every summary number the row holds (what tells apart two
    sweep files' runs that differ in a setting sweep.csv has no column for, e.g. num_requests)."""
    spec = meta.get("run_spec") or {}
    if not spec:
        return False
    for key in _SWEEP_KEYS:
        if key in row and not _same(row[key], spec.get(key)):
            return False
    return all(_same(value, summary[key]) for key, value in row.items()
               if key not in _SWEEP_KEYS and key != RUN_HASH_COLUMN and key in summary)


def varying(runs: list[SavedRun], names: tuple[str, ...]) -> list[str]:
    """The fields among ``names`` whose values differ between runs."""
    return [n for n in names if len({repr(r.fields.get(n)) for r in runs}) > 1]


def _goes_with_the_policy(runs: list[SavedRun], name: str, others: list[str]) -> bool:
    """Whether every policy ran with one value of field ``name`` only, in each setting of the fields ``others``.
    Then the field is part of what the policy is (a reproduce directory scores LTR, PO and Classification each
    with its own predictor, FCFS with none) and labels the lines; as a panel row of its own it put every policy
    on a row alone."""
    seen: dict[tuple[str, ...], set[str]] = {}
    for r in runs:
        key = tuple(repr(r.fields.get(k)) for k in [*others, "policy"])
        seen.setdefault(key, set()).add(repr(r.fields.get(name)))
    return all(len(values) == 1 for values in seen.values())


def _text(name: str, value: Any) -> str:
    if name == "policy":
        return str(value)
    if name == "replicas":
        return f"x{value}"
    return f"{name} {value}"


def _label(run: SavedRun, keys: list[str]) -> str:
    """The run's values of the fields ``keys``, as a line label; a lone replica's router (none) is left out: beside
    a cluster run it read "fcfs x1 router None"."""
    return " ".join(_text(k, run.fields.get(k)) for k in keys if not (k == "router" and run.fields.get(k) is None))


def group_for_plot(runs: list[SavedRun]) -> list[tuple[str, list[tuple[str, pl.DataFrame]]]]:
    """Runs grouped by setting (one panel row each; the settings that vary name it), each a list of
    (line label, requests); lines are labelled by the policy and whatever cluster fields vary."""
    return [(title, [(label, requests) for label, _, requests in lines]) for title, lines in _rows(runs)]


def line_series(runs: list[SavedRun]) -> dict[str, str]:
    """Each line label of :func:`group_for_plot` -> the series it belongs to, which its colour follows: the label
    without the predictor where that only goes with the policy (reproduce's LTR scored by one predictor per
    workload is one series, whose label names each row's predictor)."""
    return {label: series for _, lines in _rows(runs) for label, series, _ in lines}


def _rows(runs: list[SavedRun]) -> list[tuple[str, list[tuple[str, str, pl.DataFrame]]]]:
    """:func:`group_for_plot`'s rows, each line with its series (:func:`line_series`) too."""
    row_keys = varying(runs, SETTING_FIELDS)
    line_keys = ["policy"] + [k for k in varying(runs, LINE_FIELDS) if k != "policy"]
    series_keys = list(line_keys)
    if "scoring" in row_keys and _goes_with_the_policy(runs, "scoring", [k for k in row_keys if k != "scoring"]):
        row_keys.remove("scoring")
        line_keys.append("scoring")
    groups: dict[str, list[SavedRun]] = {}
    for r in runs:
        groups.setdefault(", ".join(_text(k, r.fields.get(k)) for k in row_keys), []).append(r)
    return [(title, _lines(members, line_keys, series_keys)) for title, members in groups.items()]


def _lines(runs: list[SavedRun], line_keys: list[str],
           series_keys: list[str]) -> list[tuple[str, str, pl.DataFrame]]:
    """(label, series, requests) per run of one panel row. Runs whose labels would be equal (e.g. the same policy
    at another --max-num-seqs) get the settings that differ between them, else their directory's name; the series
    is named by ``series_keys`` and the same addition."""
    labels = [_label(r, line_keys) for r in runs]
    series = [_label(r, series_keys) for r in runs]
    places: dict[str, list[int]] = {}
    for i, text in enumerate(labels):  # (each label's runs, found in one pass: 10,000 runs took 4.6 s of CPU so)
        places.setdefault(text, []).append(i)
    for label, same in places.items():
        if len(same) < 2:
            continue
        alike = [runs[i] for i in same]
        keys = sorted(set.intersection(*(set(r.details) for r in alike)))  # (a key one run lacks says little)
        differ = [k for k in keys if len({repr(r.details.get(k)) for r in alike}) > 1]
        for i, r in zip(same, alike):
            extra = ", ".join(f"{k}={r.details.get(k)}" for k in differ) or r.path.name
            labels[i] = f"{label} ({extra})"
            series[i] = f"{series[i]} ({extra})"
    return list(zip(labels, series, (r.requests for r in runs)))
