"""``ltrsched reproduce`` (the paper's tables and figures in simulation) and ``ltrsched sweep``."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import click

from ltrsched import strict_json
from ltrsched.errors import UserError, first_repeat
from ltrsched.inputs import check_not_special
from ltrsched.names import check_printable, one_line, shown_path
from ltrsched.policies import limit_rules

EXPERIMENT_NAMES = ("table1", "fig3", "fig4-5", "table2", "table3", "table4", "real-model")


def backend_options(command):
    """``--jobs``, ``--backend`` and ``--address``: where a command's runs execute."""
    command = click.option("--address", default=None, metavar="ADDR",
                           help="Join the Ray cluster at ADDR (host:port, ray://host:port or auto) instead of "
                                "starting a local Ray instance (--backend ray).")(command)
    command = click.option("--backend", type=click.Choice(["process", "ray"]), default="process", show_default=True,
                           help="Run on a local process pool, or as Ray tasks (pip install 'ltrsched[ray]').")(command)
    return click.option("--jobs", "-j", type=int, default=None,
                        help="Parallel runs, at most 4,096 (default: the CPUs this process may use; with --address: "
                             "the cluster's CPUs).")(command)


def _modules():
    from ltrsched.experiments import fig3, fig45, real_model, table1, table2, table3, table4

    return {"table1": table1, "fig3": fig3, "fig4-5": fig45, "table2": table2, "table3": table3, "table4": table4,
            "real-model": real_model}


def check_run_tree_out(out, command: str) -> None:
    """One-line error if ``out`` holds output no run tree may share: one run (``simulate -o``'s, an engine's), a
    validation (whose runs/ its manifest records), a profile or a checkpoint; or if it lies in another output's
    ``runs/``. ``sweep -o RUN`` wrote its sweep.csv and runs/ beside a simulated run, and ``plot cdf RUN`` then drew
    that one run, the sweep's left out. Sweeps, capacity searches and reproductions may share an ``--out`` (their
    runs are cached by content)."""
    from ltrsched.output_owner import check_output_owner

    check_output_owner(out, command, accepts=("sweep", "capacity", "reproduction", "cached-runs"))


@click.command()
@click.argument("experiment", type=click.Choice([*EXPERIMENT_NAMES, "all"]))
@click.option("--quick", is_flag=True, help="A reduced but faithful version (`table1 --quick`: under a minute on 2 cores).")
@click.option("--out", "-o", type=click.Path(file_okay=False, path_type=Path), default=Path("results"),
              show_default=True, help="Output directory (runs/, tables/, figures/, REPRODUCTION.md).")
@backend_options
def reproduce(experiment, quick, out, jobs, backend, address):
    """Run the paper's experiments in the simulator and compare with the paper's numbers.

    Finished runs are cached under OUT/runs and skipped on a rerun.
    """
    from ltrsched.experiments.report import write_report
    from ltrsched.experiments.runner import check_jobs, load_summary, open_backend, run_all, run_hashes
    from ltrsched.outputs import check_out_dir

    check_jobs(jobs)
    check_out_dir(out, files=("REPRODUCTION.md",), dirs=("runs", "sections", "tables", "figures"))
    check_run_tree_out(out, "reproduce")
    modules = _modules()
    names = EXPERIMENT_NAMES if experiment == "all" else (experiment,)
    if quick and experiment == "all":
        names = ("table1", "fig3", "fig4-5", "real-model")
    t0 = time.perf_counter()
    specs = [s for n in names for s in modules[n].specs(quick)]
    with open_backend(backend, jobs, address) as runner:  # a bad --address or a missing Ray fails here, first
        hashes = run_hashes(specs)
        # (a bar on a terminal, else a line about every 10 s: ltrsched.progress); the predictors are loaded for the
        # runs to compute alone: a cached rerun loaded both ShareGPT checkpoints (torch, the tokenizer) for none
        stats = run_all(specs, out, progress=True, desc=f"reproduce {experiment}", backend=runner, hashes=hashes,
                        prepare=_prepare_predictors)
    sections = [modules[n].build(out, quick) for n in names]
    elapsed = time.perf_counter() - t0
    cmd = "ltrsched reproduce " + experiment + (" --quick" if quick else "")
    report = write_report(list(zip(names, sections)), out, cmd, elapsed, EXPERIMENT_NAMES)
    for sec in sections:
        click.echo(f"\n{sec.title}")
        for caption, table in sec.tables[:1]:
            with __import__("polars").Config(tbl_rows=60, tbl_cols=12, tbl_width_chars=160, float_precision=3):
                click.echo(table)
        for c in sec.checks:
            click.echo(("  [ok]   " if c.passed else "  [MISS] ") + c.claim + (f" ({c.detail})" if c.detail else ""))
    click.echo(f"\n{stats.line()}; {elapsed:.1f} s. Report: {shown_path(report)}")
    # (the paper's settings preempt about never: BENCHMARKS.md; a thrash here is news, and its starvation rows wrong)
    for line in thrash_warnings(specs, [load_summary(out, s, hashes[s]) for s in specs]):
        click.echo(line, err=True)


def _tpot_slo(slos) -> str | None:
    """The first SLO on TPOT, as given (``tpot_p90=0.05``), or None."""
    return next((f"{s.metric}={s.limit:g}" for s in slos if s.metric.startswith("tpot_")), None)


def _check_slo_defined(slos, wl, workload: str) -> None:
    """One-line :class:`UserError` if an SLO is on TPOT and no request of ``wl`` (the requests of a run) has a
    token after its first: TPOT is undefined in every run, counted as infinitely late, so every rate missed the SLO
    (and the figure of that metric, all its values infinite, ended in a ValueError traceback)."""
    tpot = _tpot_slo(slos)
    if tpot and wl.df["output_tokens"].max() <= 1:
        raise UserError(f"--slo {tpot}: TPOT (the time per output token after the first) is undefined for every "
                        f"request of {workload}: all of its outputs are 1 token; give an SLO on another metric "
                        "(e.g. ttft_p90 or e2e_latency_p90)")


def _check_slo_defined_per_seed(slos, workload: str, size: int, seeds) -> None:
    """One-line :class:`UserError` if an SLO is on TPOT and the ``size`` requests one of ``seeds`` draws from
    ``workload`` all have 1-token outputs (a workload of few longer outputs): that seed's runs have no TPOT, counted as
    infinitely late, so every rate missed the SLO (and the figure ended in a ValueError traceback)."""
    tpot = _tpot_slo(slos)
    if not tpot:
        return
    from ltrsched.workloads import load_workload

    for seed in seeds:
        if load_workload(workload, num_requests=size, seed=seed).df["output_tokens"].max() <= 1:
            raise UserError(f"--slo {tpot}: TPOT (the time per output token after the first) is undefined in the "
                            f"runs of seed {seed}: the {size:,} requests it draws from {workload} all have outputs of "
                            "1 token; give more requests (-n), or an SLO on another metric (e.g. ttft_p90)")


def _prepare_predictors(specs) -> None:
    """Train (or load) the trained predictors the runs ``specs`` use once, here, before the worker processes (the
    runs to compute: :func:`~ltrsched.experiments.runner.run_all`'s ``prepare``; none where every run is cached)."""
    scorings = {s.scoring for s in specs}
    if any(sc.startswith("trained-") for sc in scorings):
        from ltrsched.predictors.pretrained import sharegpt_predictor

        if any(sc.startswith("trained-ltr") for sc in scorings):
            sharegpt_predictor("rank")
        for sc in sorted(s for s in scorings if s.startswith("trained-class")):
            _, _, bucket = sc.partition("bucket=")
            sharegpt_predictor("class", int(bucket) if bucket else 820)


def _once_per_scoring(prepare: Callable[[list], None]) -> Callable[[list], None]:
    """``prepare`` (:func:`_prepare_predictors`) called for the runs of a scoring it was not called for yet: a
    capacity search's rounds each compute runs, and a predictor is loaded once, in the first round that needs it."""
    seen: set[str] = set()

    def call(specs: list) -> None:
        new = [s for s in specs if s.scoring not in seen]
        if new:
            seen.update(s.scoring for s in new)
            prepare(new)

    return call


#: Sweep keys holding a list, and the type of its items.
SWEEP_LISTS: dict[str, type | tuple[type, ...]] = {
    "workloads": str, "policies": str, "profiles": str, "rates": (int, float), "seeds": int,
    "replicas": int, "routers": str,
}
#: Sweep keys holding one value, and its type.
SWEEP_SCALARS: dict[str, type | tuple[type, ...]] = {
    "arrival": str, "num_requests": int, "duration": (int, float), "scoring": str,
    "max_num_batched_tokens": int, "max_num_seqs": int, "preemption": str, "block_size": int,
    "max_model_len": int,
}
SWEEP_KEYS = set(SWEEP_LISTS) | set(SWEEP_SCALARS)
#: ``sweep --max-runs``'s default: most runs one sweep file may multiply out to. A run of the README's sweep (2,000
#: requests) took 0.2 CPU-s and its key 1.7 ms on the 2-core machine, so 10,000 such runs are ~17 minutes there (longer
#: with more requests): a large sweep someone means, while a grid that multiplies out to millions (days of runs,
#: gigabytes of specs held in memory) is a mistake.
DEFAULT_MAX_RUNS = 10_000


#: Sweep keys holding specs (policies, routers, a scoring, ...), not paths: what :data:`MAX_SPEC_CHARS` bounds.
SPEC_KEYS = ("policies", "routers", "scoring", "arrival", "preemption")
#: Longest spec a sweep file may give [characters] (``ltr:tau=0.62,starve=200,quantum=10`` is 34): a policy of
#: 600,000 characters was echoed whole in its one-line error ("unknown policy 'a a a ...'", 600,499 characters).
MAX_SPEC_CHARS = 1000
#: Most unknown keys an error names (a file of 10,000 of them was a line of 69,140 characters).
MAX_SHOWN_KEYS = 10


def shown_value(value) -> str:
    """A sweep file's value as its one-line errors show it: Python's repr (a control character, a bidirectional-text
    override escaped), cut to 6 items of a list, 4 of a table, 60 characters of a text and 40 digits of a number
    (:mod:`reprlib`). A list of 10,000 seeds with one below 0 was a line of 58,965 characters."""
    import reprlib

    shown = reprlib.Repr()
    shown.maxlist, shown.maxdict, shown.maxstring, shown.maxother, shown.maxlong, shown.maxlevel = 6, 4, 60, 60, 40, 3
    return shown.repr(value)


def _with_item(values: list, bad) -> str:
    """A sweep file's list as its error shows it (:func:`shown_value`), and where that cuts it, its first item for which
    ``bad`` holds, with its place: ``[0, 1, 2, 3, 4, 5, ...] (item 10,000: -1)``."""
    text = shown_value(values)
    if len(values) <= 6:
        return text
    i = next((i for i, v in enumerate(values) if bad(v)), None)
    return text if i is None else f"{text} (item {i + 1:,}: {shown_value(values[i])})"


def _unknown_keys_text(keys: list[str]) -> str:
    """Unknown keys of a sweep file for its error: each as written where it is printable text of up to 40 characters,
    else as :func:`shown_value` (``"rates\\u202e"`` turned the rest of the line right to left), at most
    :data:`MAX_SHOWN_KEYS` of them."""
    names = [k if k.isprintable() and 0 < len(k) <= 40 and "," not in k else shown_value(k)
             for k in keys[:MAX_SHOWN_KEYS]]
    more = f" and {len(keys) - MAX_SHOWN_KEYS:,} more" if len(keys) > MAX_SHOWN_KEYS else ""
    return ", ".join(names) + more


def sweep_run_count(data: dict) -> tuple[int, str]:
    """How many runs a checked sweep file's settings ``data`` multiply out to (workloads x policies x profiles x
    rates x seeds x clusters, each lone replica one cluster and each larger count one per router), computed from
    the lists' lengths without listing a run, and the product in words (``"3 policies x 2 rates"``; lists of one left
    out)."""
    clusters = sum(1 if n == 1 else len(data.get("routers", ["round-robin"])) for n in data.get("replicas", [1]))
    factors = [(len(data.get(k, [None])), k) for k in ("workloads", "policies", "profiles", "rates", "seeds")]
    factors.append((clusters, "clusters (replicas x routers)"))
    count = 1
    for n, _ in factors:
        count *= n
    words = " x ".join(f"{n:,} {name}" for n, name in factors if n != 1) or "1 run"
    return count, words


def check_run_count(data: dict, max_runs: int, path: Path) -> None:
    """One-line :class:`UserError` when the sweep multiplies out to more than ``max_runs`` runs (before any run
    is listed: a grid of 10**12 runs was expanded into memory first)."""
    count, words = sweep_run_count(data)
    if count > max_runs:
        raise UserError(f"{path}: the sweep multiplies out to {count:,} runs ({words}), more than --max-runs "
                        f"{max_runs:,}; shorten its lists, or raise --max-runs if you mean it")


def _load_sweep(path: Path, max_runs: int = DEFAULT_MAX_RUNS) -> dict:
    check_not_special(path, "sweep file")  # (it said "sweep file not found" of /dev/zero or a pipe)
    if not path.is_file():
        raise UserError(f"sweep file not found: {path}")
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".json"):
        raise UserError(f"{path}: unknown sweep file format {path.suffix!r}; use .toml or .json")
    try:
        text = path.read_text(encoding="utf-8-sig")  # (a byte-order mark, as some Windows editors write, is dropped)
        if suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        else:
            data = json.loads(text, object_pairs_hook=strict_json.unique_keys)
    except (ValueError, json.JSONDecodeError) as exc:  # UnicodeDecodeError is a ValueError
        raise UserError(f"{path}: cannot parse ({exc})") from None
    except RecursionError:  # e.g. 100,000 nested [ (no sweep setting nests)
        raise UserError(f"{path}: cannot parse (nested too deeply)") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a table of sweep settings")
    unknown = sorted(set(data) - SWEEP_KEYS)
    if unknown:
        raise UserError(f"{path}: unknown key(s) {_unknown_keys_text(unknown)}; "
                        f"known: {', '.join(sorted(SWEEP_KEYS))}")
    if not data.get("policies"):
        raise UserError(f"{path}: 'policies' must list at least one policy spec")
    _check_sweep_types(data, path)
    check_run_count(data, max_runs, path)
    _resolve_sweep_paths(data, path)
    _check_sweep_values(data, path)
    return data


def _resolve_sweep_paths(data: dict, path: Path) -> None:
    """Make the sweep file's workload and profile files relative to the file's own directory, as pyproject
    and docker-compose do (not to the current one, so that a sweep file kept beside its data runs from
    anywhere), with ``~`` expanded (a shell expands it on a command line, TOML does not). Built-in names
    stay names. Runs are keyed by a file's bytes, not its path (:meth:`RunSpec.key`), so the runs are the
    same whichever directory the sweep is started from. One file named twice (``w.csv`` and ``./w.csv``, or a
    link to it) is a one-line :class:`UserError`."""
    from ltrsched.sim.profiles.io import profile_file
    from ltrsched.workloads.builtin import BUILTIN

    def resolved(value: str) -> Path:
        return path.parent / os.path.expanduser(value)  # (an absolute path stays itself)

    def unknown_name(value: str) -> bool:  # it stays a name, for load_profile's error listing the built-ins
        path_like = value.endswith(".json") or value.startswith("~") or any(s in value for s in ("/", os.sep))
        return not path_like and not resolved(value).exists() and not Path(value).exists()

    def is_name(key: str, value: str) -> bool:
        if key == "workloads":
            return value in BUILTIN
        return profile_file(value) is None or unknown_name(value)

    for key in ("workloads", "profiles"):
        if key not in data:
            continue
        first: dict[str, str] = {}  # a file's real path (or a built-in's name) -> how the sweep file named it
        for i, name in enumerate(data[key]):
            named = is_name(key, name)
            if not named:
                data[key][i] = str(resolved(name))
            same = first.setdefault(name if named else _real_path(data[key][i]), name)
            if same != name:  # ("w.csv" and "./w.csv": one run, listed twice in sweep.csv)
                raise UserError(f"{path}: {key!r} lists {same!r} and {name!r}, the same file; give each once")


def _real_path(spelled: str) -> str:
    """``spelled``'s real path (symlinks and ``..`` resolved), to tell two spellings of one file apart; the path as
    spelled where it cannot be resolved (a NUL byte in it: the file's reader then gives the one-line error)."""
    try:
        return os.path.realpath(spelled)
    except (ValueError, OSError):
        return spelled


def _type_name(types) -> str:
    return {str: "text", int: "an integer"}.get(types, "a number")


def _check_sweep_types(data: dict, path: Path) -> None:
    """Raise :class:`UserError` for a key whose value has the wrong type (e.g. a string where a list goes)."""
    for key, value in data.items():
        if key in SWEEP_LISTS:
            types = SWEEP_LISTS[key]
            if not isinstance(value, list) or not value or any(isinstance(v, bool) or not isinstance(v, types) for v in value):
                raise UserError(f"{path}: {key!r} must be a non-empty list, each item {_type_name(types)}; got "
                                f"{shown_value(value)}")
            blank = next((i for i, v in enumerate(value) if isinstance(v, str) and not v.strip()), None)
            if blank is not None:  # (workloads = [""] was "workload '.' is a directory": the sweep file's own)
                raise UserError(f"{path}: {key!r} item {blank + 1} of {len(value)} is empty ({value[blank]!r})")
            if key in SPEC_KEYS:
                for i, v in enumerate(value):
                    _check_spec_length(v, f"{path}: {key!r} item {i + 1} of {len(value)}")
            if key in ("policies", "routers"):  # ("fcfs\n" ran, and its line break split sweep.csv's rows and table)
                for i, v in enumerate(value):
                    check_printable(v, f"{path}: {key!r} item {i + 1} of {len(value)}")
            twice = first_repeat(value)
            if twice is not None:  # it ran once and its row appeared twice in sweep.csv
                raise UserError(f"{path}: {key!r} lists {shown_value(twice)} twice")
        elif isinstance(value, bool) or not isinstance(value, SWEEP_SCALARS[key]):
            raise UserError(f"{path}: {key!r} must be {_type_name(SWEEP_SCALARS[key])}, got {shown_value(value)}")
        elif key in SPEC_KEYS:
            _check_spec_length(value, f"{path}: {key!r}")


def _check_spec_length(value: str, where: str) -> None:
    """One-line :class:`UserError` for a spec longer than :data:`MAX_SPEC_CHARS` (``where``: the file and key)."""
    if len(value) > MAX_SPEC_CHARS:
        raise UserError(f"{where} is {len(value):,} characters long, more than the {MAX_SPEC_CHARS:,} a spec may have "
                        f"(it starts {shown_value(value[:40])})")


def _check_sweep_values(data: dict, path: Path) -> None:
    """Raise :class:`UserError` for names and numbers the runs would reject (rates [req/s], duration [s])."""
    import reprlib

    from ltrsched.experiments.scoring import check_scoring
    from ltrsched.numbers import is_finite_number
    from ltrsched.sim.commands import ARRIVALS
    from ltrsched.workloads.builtin import BUILTIN

    arrival = data.get("arrival", "burst")
    if arrival not in ARRIVALS:
        raise UserError(f"{path}: 'arrival' must be one of {', '.join(ARRIVALS)}, got {shown_value(arrival)}")
    if arrival in ("poisson", "gamma") and "rates" not in data:
        raise UserError(f"{path}: arrival {arrival!r} needs 'rates' [req/s]")
    for key in ("rates", "duration"):  # nothing is silently ignored
        if arrival == "burst" and key in data:
            raise UserError(f"{path}: {key!r} = {shown_value(data[key])} has no effect with arrival \"burst\""
                            f"{'' if 'arrival' in data else ' (the default)'}, where every request arrives at "
                            "t = 0; add arrival = \"poisson\" (or \"gamma\", or \"replay\" for a trace)")

    for key in ("rates", "duration"):
        values = data.get(key, [])
        if not all(is_finite_number(v) and v > 0 for v in (values if isinstance(values, list) else [values])):
            raise UserError(f"{path}: {key!r} must be positive and finite, got {reprlib.repr(values)}")
    from ltrsched.sim.rates import check_rate

    for i, rate in enumerate(data.get("rates", [])):
        check_rate(rate, f"{path}: 'rates' item {i + 1} of {len(data['rates'])}:", burst='arrival = "burst"')
    if data.get("num_requests", 1) < 1:
        raise UserError(f"{path}: 'num_requests' must be >= 1, got {shown_value(data['num_requests'])}")
    for key in ("max_num_batched_tokens", "max_num_seqs", "block_size"):  # (SimConfig's rule, as 'max_model_len')
        if reason := limit_rules.not_positive(key, data.get(key), repr):
            raise UserError(f"{path}: {reason}")
    if any(r < 1 for r in data.get("replicas", [])):
        raise UserError(f"{path}: 'replicas' must be >= 1, got {_with_item(data['replicas'], lambda r: r < 1)}")
    from ltrsched.sim.cluster import MAX_REPLICAS

    if any(r > MAX_REPLICAS for r in data.get("replicas", [])):  # (was found by its first run, after the others)
        raise UserError(f"{path}: 'replicas' must be at most {MAX_REPLICAS:,}, got {max(data['replicas']):,}")
    if "routers" in data and not any(n > 1 for n in data.get("replicas", [1])):  # nothing is silently ignored
        raise UserError(f"{path}: 'routers' = {shown_value(data['routers'])} has no effect without a replica count "
                        "above 1 (a lone replica needs no router); add e.g. replicas = [1, 4]")
    if any(s < 0 for s in data.get("seeds", [])):
        raise UserError(f"{path}: 'seeds' must be >= 0, got {_with_item(data['seeds'], lambda s: s < 0)}")
    if any(s >= 2**64 for s in data.get("seeds", [])):  # (polars and numpy take 64-bit seeds)
        raise UserError(f"{path}: 'seeds' must be below 2**64, got "
                        f"{_with_item(data['seeds'], lambda s: s >= 2**64)}")
    if data.get("preemption", "swap") not in ("swap", "recompute"):
        raise UserError(f"{path}: 'preemption' must be swap or recompute, got {shown_value(data['preemption'])}")
    for w in data.get("workloads", []):
        if w not in BUILTIN and Path(w).is_dir():  # (it said "neither a file nor a built-in", of a path that is)
            raise UserError(f"{path}: workload {w!r} is a directory, not a file")
        if w not in BUILTIN:
            check_not_special(w, f"{path}: workload")
        if w not in BUILTIN and not Path(w).is_file():
            raise UserError(f"{path}: workload {w!r} is neither a file nor a built-in ({', '.join(BUILTIN)})")
    try:
        check_scoring(data.get("scoring", "none"))
    except UserError as exc:  # (it named neither the sweep file nor its key)
        raise UserError(f"{path}: 'scoring': {exc}") from None
    if "max_model_len" in data:
        from ltrsched.sim.config import key_naming

        check_max_model_len(data["max_model_len"], key_naming(SWEEP_KEYS), f"{path}: ")


def check_max_model_len(value: int | None, naming, where: str = "") -> None:
    """Raise :class:`UserError` for a ``max_model_len`` [tokens] the simulator refuses (its check is
    :class:`SimConfig`'s), naming the setting as ``naming`` (a :class:`~ltrsched.sim.config.Naming`: the command's
    option or the sweep file's key), after ``where``."""
    from ltrsched.sim.config import ConfigError, SimConfig

    try:
        SimConfig(max_model_len=value)
    except ConfigError as exc:
        raise UserError(f"{where}{exc.render(naming)}") from None


@contextlib.contextmanager
def _plugin_hint(command: str):
    """Adds to an unknown policy's or router's one-line error how this command loads a plugin's: it takes no
    ``--plugin`` (its runs go to worker processes, which import ``LTRSCHED_PLUGINS`` themselves), and a user coming
    from ``simulate --plugin`` met only the list of built-ins."""
    try:
        yield
    except UserError as exc:
        if not str(exc).startswith(("unknown policy", "unknown router")):
            raise
        raise UserError(f"{exc}; {command} loads plugins from LTRSCHED_PLUGINS (e.g. LTRSCHED_PLUGINS=my_policy.py "
                        "ltrsched ...), not --plugin") from None


@contextlib.contextmanager
def _in_sweep_file(path: Path, key: str):
    """Starts a one-line error of a sweep file's ``key`` (a bad policy or router spec: ``unknown router 'nope'``)
    with the file and the key, as the sweep file's own checks do; one that names them already is left as it is."""
    prefix = f"{path}: {key!r}: "
    try:
        yield
    except UserError as exc:
        if str(exc).startswith(prefix):
            raise
        raise UserError(f"{prefix}{exc}") from None


def _clusters(data: dict, option: str) -> list[tuple[int, str | None]]:
    """(replicas, router) pairs of a sweep: a lone replica has no router; routers are checked here (``option``: where
    they were given, for the error of two spellings of one router)."""
    from ltrsched.routers.registry import check_distinct_routers

    routers = data.get("routers", ["round-robin"])
    check_distinct_routers(routers, option)  # (fails early on a bad spec, too)
    pairs = []
    for n in data.get("replicas", [1]):
        pairs.extend([(n, None)] if n == 1 else [(n, r) for r in routers])
    return list(dict.fromkeys(pairs))


def _checked_runs(data: dict, sweep_file: Path, out: Path) -> tuple[list, list[tuple[int, str | None]], dict]:
    """A checked sweep file's runs (``data``: its settings), checked before any runs (:func:`check_runs`, of those not
    finished under ``out``), with its clusters (:func:`_clusters`) and each run's hash (:func:`run_hashes`, computed
    once here for the checks, the runs and ``sweep.csv``)."""
    from ltrsched.experiments.runspec import RunSpec
    from ltrsched.policies.registry import check_distinct_policies
    from ltrsched.sim.profiles import load_profile

    with _in_sweep_file(sweep_file, "policies"), _plugin_hint("a sweep"):
        check_distinct_policies(data["policies"], f"{sweep_file}: 'policies'")  # (fails early on a bad spec, too)
    loaded = {}  # (each profile file read once here: the KV capacity check below reads it too)
    for prof in data.get("profiles", []):
        try:
            loaded[prof] = load_profile(prof)
        except UserError as exc:  # (it named neither the sweep file nor its key)
            raise UserError(f"{sweep_file}: 'profiles': {exc}") from None
    with _in_sweep_file(sweep_file, "routers"), _plugin_hint("a sweep"):
        clusters = _clusters(data, f"{sweep_file}: 'routers'")
    arrival = data.get("arrival", "burst")
    rates = data.get("rates", [None])  # (none with burst arrivals: refused above)
    specs = [
        RunSpec(experiment="sweep", setting=f"{w} @ {r}", label=p, workload=w, policy=p, profile=prof,
                num_requests=data.get("num_requests"), arrival=arrival, rate=r, duration=data.get("duration"),
                scoring=data.get("scoring", "none"), seed=seed,
                max_num_batched_tokens=data.get("max_num_batched_tokens", 768), max_num_seqs=data.get("max_num_seqs", 256),
                preemption=data.get("preemption", "swap"), replicas=n, router=router,
                block_size=data.get("block_size"), max_model_len=data.get("max_model_len"))
        for w, p, prof, r, seed, (n, router) in itertools.product(
            data.get("workloads", ["sharegpt"]), data["policies"], data.get("profiles", ["a100-llama3-8b"]), rates,
            data.get("seeds", [0]), clusters)
    ]
    from ltrsched.experiments.runner import check_runs, run_hashes
    from ltrsched.sim.config import SimConfig, key_naming
    from ltrsched.sim.simulate import kv_capacity_blocks

    by_profile = {(s.profile, s.block_size): s for s in specs}.values()  # (each profile's block size resolved once)
    for prof, size in sorted({(s.profile, s.resolved_block_size()) for s in by_profile}):  # a sweep file sets neither
        kv_capacity_blocks(SimConfig(profile=prof, block_size=size), loaded.get(prof),  # utilization nor the KV
                           fix=f"set a smaller block_size in {sweep_file}, or use another profile",
                           naming=key_naming(SWEEP_KEYS))  # capacity
    # a bad row, too few requests or arrivals out of range (e.g. a duration the requests cannot fill), a policy or
    # router lacking a column, a request too long for a profile fail here, before any run, rather than after the runs
    # sorted ahead of theirs
    hashes = run_hashes(specs)  # (each run's once: the checks, the runs and sweep.csv read it)
    try:
        check_runs(specs, out, hashes)  # (the runs not finished under --out: a rerun builds no workload it reuses)
    except UserError as exc:  # (e.g. "asked for 10 requests but the eval split has only 4000": which file asked)
        raise UserError(f"{sweep_file}: {exc}") from None
    return specs, clusters, hashes


@click.command()
@click.argument("sweep_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "-o", type=click.Path(file_okay=False, path_type=Path), default=Path("sweep"), show_default=True,
              help="Output directory (runs/ and sweep.csv); runs already under its runs/ are reused.")
@click.option("--max-runs", type=click.IntRange(min=1), default=DEFAULT_MAX_RUNS, show_default=True,
              help="Refuse a sweep file whose lists multiply out to more runs than this, before any run (10,000 runs "
                   "of 2,000 requests are ~17 minutes on 2 cores; a grid of millions is usually a mistake). Raise "
                   "it for a sweep you mean.")
@backend_options
def sweep(sweep_file, out, jobs, backend, address, max_runs):
    """Run policies x workloads x rates x profiles from a TOML/JSON file; write OUT/sweep.csv.

    Keys: policies (list, required), workloads, profiles, arrival, rates, num_requests, duration, seeds,
    scoring (e.g. "approx-score:tau=0.6" for LTR), max_num_batched_tokens, max_num_seqs, preemption,
    block_size (tokens per KV block; default: the block size a measured profile's engine used, 128 for
    the cpu-* profiles, else 16), max_model_len (longest prompt + output [tokens]; default: the profile's,
    8,192 for the Llama-3 profiles), replicas (e.g. [1, 8]) and routers (e.g. ["round-robin", "least-outstanding"]; used where replicas > 1).
    rates and duration need arrival = "poisson", "gamma" or "replay" (burst, the default, puts every
    request at t = 0; a sweep that sets them with burst is refused). Relative workload and profile paths
    are relative to SWEEP_FILE's directory.
    """
    import polars as pl

    from ltrsched import atomic
    from ltrsched.experiments.runner import check_jobs, load_summary, open_backend, run_all
    from ltrsched.outputs import check_inputs_kept, check_out_dir
    from ltrsched.plots.runs import RUN_HASH_COLUMN
    from ltrsched.progress import LateLine

    check_jobs(jobs)
    check_out_dir(out, files=("sweep.csv",), dirs=("runs",))
    check_run_tree_out(out, "sweep")
    data = _load_sweep(sweep_file, max_runs)
    for kind in ("workloads", "profiles"):  # (a workload named sweep.csv in --out was replaced by the table)
        for source in data.get(kind, []):
            check_inputs_kept({f"the sweep's {kind[:-1]}": source}, files=(out / "sweep.csv",))
    with LateLine(f"sweep: checking {sweep_run_count(data)[0]:,} runs ..."):  # (10,000 runs: seconds before the first)
        specs, clusters, hashes = _checked_runs(data, sweep_file, out)
    _note_duration_cut(specs, sweep_file)
    _note_block_sizes(specs)
    for spec in {(s.workload, s.num_requests, s.seed, s.arrival, s.rate): s for s in specs}.values():
        if spec.arrival == "replay" and spec.rate is None and spec.num_requests is not None:
            _note_thinned_replay(spec, sweep_file)
    from ltrsched.signal_stops import SignalStops

    with SignalStops(), open_backend(backend, jobs, address) as runner:  # (kill: "aborted", exit 143, as Ctrl-C's)
        stats = run_all(specs, out, progress=True, desc="sweep", backend=runner,  # (a line every 10 s off a terminal)
                        hashes=hashes)
    rows = []
    for s in specs:
        run_hash = hashes[s]  # (its directory's name, runs/<run_hash>: what plot cdf finds the row's run by)
        summ = load_summary(out, s, run_hash)
        cluster = {"replicas": s.replicas, "router": s.router} if clusters != [(1, None)] else {}
        rows.append({"workload": s.workload, "policy": s.policy, "profile": s.profile, "arrival": s.arrival,
                     "rate": s.rate, "seed": s.seed, **cluster,
                     **{k: v for k, v in summ.items()
                        if (v is None or isinstance(v, (int, float))) and k != "num_replicas"},  # None: undefined
                     RUN_HASH_COLUMN: run_hash})
    table = pl.DataFrame(rows, infer_schema_length=None)
    atomic.write_csv(out / "sweep.csv", table)
    echo_table(table.select(*_shown_keys(table), "latency_per_token_mean", "latency_per_token_p90", "ttft_mean",
                            "throughput_rps"))
    click.echo(f"{stats.line()}; wrote {shown_path(out / 'sweep.csv')}")
    for line in thrash_warnings(specs, rows):
        click.echo(line, err=True)


def echo_table(table, **config) -> None:
    """Print a result table (``sweep``'s, ``capacity``'s) on stdout: every row up to 100 and every column, strings
    whole up to 120 characters and rows unwrapped up to 250 (polars cut strings at 32 characters, and wrapped wider
    rows: two policy specs differing past it printed alike), numbers to 3 decimals; ``config``: more of
    :class:`polars.Config`'s settings."""
    import polars as pl

    with pl.Config(tbl_rows=100, tbl_cols=-1, tbl_width_chars=250, fmt_str_lengths=120, float_precision=3, **config):
        click.echo(table)


def _shown_keys(table) -> list[str]:
    """The columns that tell a sweep's printed rows apart: workload, policy, profile and rate, then seed, replicas and
    router where the sweep has more than one of them (without them two seeds' or clusters' rows looked alike)."""
    varying = [c for c in ("seed", "replicas", "router") if c in table.columns and table[c].n_unique() > 1]
    return ["workload", "policy", "profile", "rate", *varying]


def _note_duration_cut(specs, sweep_file) -> None:
    """The note (on stderr, held to the end), once for the sweep, that its ``duration`` kept only the requests
    arriving in its first seconds, with how many of how many (each workload and rate's, built here where
    :func:`~ltrsched.experiments.runner.check_runs` did not build it, for a finished run; counted once per run)."""
    from ltrsched.experiments.runner import base_workload, build_workload, workload_key, workload_order
    from ltrsched.workloads.arrivals import duration_cut_note

    timed = {workload_key(s): s for s in specs}
    if not timed or next(iter(timed.values())).duration is None:  # (one duration for the whole sweep)
        return
    # (a seed's workloads in a row: in the sweep's order, rate before seed, each base workload was built once per rate)
    kept = {key: (len(build_workload(s)), len(base_workload(s)))
            for key, s in sorted(timed.items(), key=lambda item: workload_order(item[1]))}
    counts = [kept[workload_key(s)] for s in specs]  # (each run's)
    duration = next(iter(timed.values())).duration
    note = duration_cut_note(counts, duration, f"duration = {duration:g} in {sweep_file}",
                             "raise duration or the rates to run more, or leave duration out to run them all")
    if note:  # (naming the sweep file: on one line, as paths are shown)
        print(one_line(note), file=sys.stderr)


def _note_block_sizes(specs) -> None:
    """``simulate``'s note (:func:`ltrsched.sim.commands.block_size_note`, on stderr, held to the end) that the sweep
    file's ``block_size`` [tokens per KV block] differs from the one a profile's engine used, once per distinct
    (profile, block size) pair: a sweep of the cpu-* profiles with ``block_size = 16`` said nothing. It names the
    file's key (``block_size = 16``), not ``simulate``'s ``--block-size``."""
    from ltrsched.sim.commands import block_size_note
    from ltrsched.sim.config import key_naming

    naming = key_naming(SWEEP_KEYS)
    for profile, size in dict.fromkeys((s.profile, s.block_size) for s in specs):
        note = block_size_note(profile, size, naming)
        if note is not None:
            print(one_line(note), file=sys.stderr)


def _note_thinned_replay(spec, sweep_file) -> None:
    """The note (on stderr, held to the end) that ``spec``'s replay of a sample of a trace serves it thinned."""
    from ltrsched.workloads import load_workload
    from ltrsched.workloads.arrivals import thinned_replay_note

    note = thinned_replay_note(
        load_workload(spec.workload, num_requests=spec.num_requests, seed=spec.seed), load_workload(spec.workload),
        f"num_requests = {spec.num_requests} in {sweep_file}",
        "set rates = [R] to replay them at R req/s, or leave out num_requests and replay the trace's first D seconds "
        "with duration = D")
    if note:  # (naming the sweep file and workload: on one line, as paths are shown)
        print(one_line(note), file=sys.stderr)


def thrash_warnings(specs, rows: list[dict]) -> list[str]:
    """One ``warning:`` line per policy whose starvation prevention thrashed in some of the sweep's runs (more
    preemptions per finished request than :data:`~ltrsched.policies.starvation_thrash.THRASH_PREEMPTIONS_PER_REQUEST`),
    from the runs' summaries (``rows``, aligned with ``specs``; cached runs count too), naming its worst run (by its
    row's ``run_hash`` where the row has one, as a sweep's rows do)."""
    from ltrsched.experiments.runner import describe_run
    from ltrsched.plots.runs import RUN_HASH_COLUMN
    from ltrsched.policies import make_policy
    from ltrsched.policies.starvation_thrash import thrash_warning

    policies: dict[str, object] = {}
    thrashing: dict[str, list[tuple[float, object, dict]]] = {}  # policy -> (preemptions per finished, spec, row)
    for spec, row in zip(specs, rows):
        if spec.policy not in policies:
            policies[spec.policy] = make_policy(spec.policy)
        if "num_preemptions" not in row or "num_finished" not in row:  # (a summary written without them)
            continue
        if thrash_warning(policies[spec.policy], row["num_preemptions"], row["num_finished"], "") is not None:
            thrashing.setdefault(spec.policy, []).append((row["num_preemptions"] / row["num_finished"], spec, row))
    lines = []
    for name, runs in thrashing.items():
        _, spec, row = max(runs, key=lambda run: run[0])
        more = f" (and {len(runs) - 1} more of this policy's runs)" if len(runs) > 1 else ""
        lines.append(thrash_warning(policies[name], row["num_preemptions"], row["num_finished"],
                                    f"run {describe_run(spec, row.get(RUN_HASH_COLUMN) or spec.run_hash())}{more}"))
    return lines


def _few_requests_warnings(sizes: dict[int, int], max_num_seqs: int, default_n: int) -> list[str]:
    """A ``warning:`` line per replica count whose runs have no more requests per replica than ``max_num_seqs``
    (``sizes``: replicas -> requests per run): each replica can hold all of them in its batch at once, so at high
    rates a run is one burst of them, not a sustained load, and the search found every rate up to --max-rate
    meeting the SLOs (20 reasoning-length requests: ``above max``, 1,024 req/s)."""
    lines = []
    for replicas, size in sorted(sizes.items()):
        if size > max_num_seqs * replicas:
            continue
        each = f"{size:,} requests" + (f" over {replicas} replicas" if replicas > 1 else "")
        lines.append(f"warning: runs of {each} are no more than --max-num-seqs {max_num_seqs} per replica: all of "
                     "them can run at once, so a high rate is one burst of them, not a sustained load, and the "
                     f"capacity found may be far too high (or above max); give -n well above "
                     f"{max_num_seqs * replicas:,} (by default {default_n:,} per replica)")
    return lines


#: ``ltrsched capacity``'s default policies: FCFS, the oracle, LTR (approximate-oracle scores at the
#: paper's tau), LTR with starvation prevention, and MLFQ.
CAPACITY_POLICIES = ("fcfs", "srtf", "ltr:tau=0.62", "ltr:tau=0.62,starve=200,quantum=10", "mlfq")
#: (requests per run, seeds per rate): full and ``--quick``. A run must be long enough for a queue to build
#: above capacity (far more requests than ``max_num_seqs``); with 2,000 x 2 the capacities of the default
#: policies move by at most one 5% bisection step between seed sets (BENCHMARKS.md), with 1,000 x 2 by two.
CAPACITY_SIZES = {False: (4000, 3), True: (2000, 2)}
#: The tables capacity writes into --out (beside runs/ and figures/).
CAPACITY_FILES = ("capacity.md", "capacity.csv", "capacity-rates.csv")


@click.command()
@click.option("--slo", "slo_texts", multiple=True, metavar="METRIC=SECONDS",
              help="An upper limit on a run summary's metric, e.g. ttft_p90=2, tpot_p90=0.1, "
                   "latency_per_token_mean=0.2, max_waiting_time_p99=10 (repeat; all must hold). METRIC<=SECONDS, "
                   "as the output writes SLOs, is the same (quote it in a shell: --slo 'ttft_p90<=2').")
@click.option("--policy", "-p", "policies", multiple=True,
              help=f"Policy spec (repeat; default: {', '.join(CAPACITY_POLICIES)}).")
@click.option("--profile", "profiles", multiple=True, help="Step-time profile (repeat; default: a100-llama3-8b).")
@click.option("--replicas", "replica_counts", type=int, multiple=True,
              help="Replicas behind a router (repeat for a capacity per count; default: 1).")
@click.option("--router", "routers", multiple=True,
              help="Router spec where --replicas > 1 (repeat; default: round-robin; `ltrsched routers`).")
@click.option("--workload", "-w", default="sharegpt", show_default=True, help="Built-in workload or file.")
@click.option("--num-requests", "-n", type=int, default=None,
              help=f"Requests per run (default: {CAPACITY_SIZES[False][0]} per replica; --quick: "
                   f"{CAPACITY_SIZES[True][0]} per replica).")
@click.option("--seeds", "num_seeds", type=int, default=None,
              help=f"Seeded runs per rate (default: {CAPACITY_SIZES[False][1]}; --quick: {CAPACITY_SIZES[True][1]}).")
@click.option("--seed", "first_seed", type=int, default=0, show_default=True,
              help="First seed (runs use SEED, SEED+1, ...).")
@click.option("--tolerance", type=float, default=0.05, show_default=True,
              help="Relative width of the final bracket: the capacity is within this of the lowest failing rate.")
@click.option("--start-rate", type=float, default=4.0, show_default=True, help="First rate tried [req/s].")
@click.option("--max-rate", type=float, default=1024.0, show_default=True,
              help="Highest rate tried [req/s], at most 1e9.")
@click.option("--scoring", default="none", show_default=True,
              help='How predictor columns are attached, e.g. "approx-score:tau=0.6" (as in sweep files).')
@click.option("--max-num-batched-tokens", type=int, default=768, show_default=True, help="Token budget per step.")
@click.option("--max-num-seqs", type=int, default=256, show_default=True,
              help="Sequence cap per step (keep --num-requests well above it: a run must queue to show overload).")
@click.option("--max-model-len", type=int, default=None,
              help="Longest prompt + output a request may have [tokens]; default: the profile's (8,192 for the "
                   "Llama-3 profiles).")
@click.option("--quick", is_flag=True, help="Fewer requests per run and fewer seeds (5 policies: 20-75 s on 2 cores).")
@click.option("--out", "-o", type=click.Path(file_okay=False, path_type=Path), default=Path("capacity"),
              show_default=True, help="Output directory (runs/, capacity.md|csv, capacity-rates.csv, figures/).")
@backend_options
def capacity(slo_texts, policies, profiles, replica_counts, routers, workload, num_requests, num_seeds, first_seed,
             tolerance, start_rate,
             max_rate, scoring, max_num_batched_tokens, max_num_seqs, max_model_len, quick, out, jobs, backend,
             address):
    """Find, per policy (and profile, replica count), the highest Poisson rate [req/s] that meets every --slo.

    A rate meets an SLO when the metric's mean over the seeds' runs is at most the limit. The search
    doubles the rate from --start-rate until the SLOs fail (or halves it until they hold), then bisects
    until the bracket is within --tolerance. Runs are cached under OUT/runs like a sweep's. A later search
    into the same OUT replaces the report and removes the earlier one's figures of SLO metrics it has not.
    """
    import math

    import polars as pl

    from ltrsched.experiments.capacity import MAX_SEEDS, parse_slos, search_capacity
    from ltrsched.experiments.capacity_report import (capacity_figures, capacity_table, limiting_note, none_notes,
                                                      rates_table, reported_metrics, stale_figures, stopped_notes)
    from ltrsched.experiments.runner import check_jobs, open_backend
    from ltrsched.experiments.runspec import RunSpec
    from ltrsched.experiments.scoring import check_scoring
    from ltrsched.experiments.tables import write_table
    from ltrsched.outputs import check_inputs_kept, check_out_dir
    from ltrsched.policies.registry import check_distinct_policies
    from ltrsched.sim.profiles import load_profile
    from ltrsched.workloads.builtin import BUILTIN

    slos = parse_slos(slo_texts)
    check_jobs(jobs)
    for option, values in (("--policy", policies), ("--profile", profiles), ("--replicas", replica_counts),
                           ("--router", routers)):
        twice = first_repeat(values)
        if twice is not None:  # its row appeared twice in the table
            raise UserError(f"{option} {twice} is given twice")
    for option, values in (("--policy", policies), ("--router", routers)):  # (labels of the table's rows, and figures')
        for value in values:
            check_printable(value, option)
    default_n, default_seeds = CAPACITY_SIZES[quick]
    k = default_seeds if num_seeds is None else num_seeds
    if num_requests is not None and num_requests < 1:
        raise UserError(f"--num-requests must be >= 1, got {num_requests}")
    if num_requests == 1:  # its search met every SLO up to --max-rate: 'above max', a capacity of nothing measured
        raise UserError("--num-requests 1: a run of one request is the same at every rate (it arrives at t = 0), so "
                        "no rate can miss an SLO; give many more requests than --max-num-seqs")
    if any(r < 1 for r in replica_counts):
        raise UserError(f"--replicas must be >= 1, got {min(replica_counts)}")
    from ltrsched.sim.cluster import MAX_REPLICAS

    if any(r > MAX_REPLICAS for r in replica_counts):  # (was found by its first run, after the workload's checks)
        raise UserError(f"--replicas must be at most {MAX_REPLICAS:,}, got {max(replica_counts):,}")
    if not 1 <= k <= MAX_SEEDS:
        raise UserError(f"--seeds must be in 1..{MAX_SEEDS:,} (a run per seed at every rate tried), got {k:,}")
    for name, value in (("--max-num-batched-tokens", max_num_batched_tokens), ("--max-num-seqs", max_num_seqs)):
        if value < 1:
            raise UserError(f"{name} must be >= 1, got {value}")
    from ltrsched.sim.config import option_naming

    check_max_model_len(max_model_len, option_naming(capacity.params))
    if first_seed < 0:
        raise UserError(f"--seed must be >= 0, got {first_seed}")
    if first_seed + k > 2**64:  # (polars and numpy take 64-bit seeds)
        raise UserError(f"--seed must be below 2**64 - {k - 1} (runs use SEED..SEED+{k - 1}), got {first_seed}" if k > 1
                        else f"--seed must be below 2**64, got {first_seed}")  # (it said "below 2**64 - 0 (...+0)")
    if not (math.isfinite(tolerance) and 0.001 <= tolerance <= 1):
        raise UserError(f"--tolerance must be between 0.001 and 1 (relative), got {tolerance}")
    from ltrsched.sim.rates import check_rate

    for name, value in (("--start-rate", start_rate), ("--max-rate", max_rate)):
        check_rate(value, name, burst=None)
    if start_rate > max_rate:
        raise UserError(f"--start-rate {start_rate:g} is above --max-rate {max_rate:g}")
    if not workload.strip():  # (Path("") is the current directory: "workload '' is a directory")
        raise UserError(f"no workload given (the name {workload!r} is empty): give a built-in ({', '.join(BUILTIN)}) "
                        "or a file")
    if workload not in BUILTIN and Path(workload).is_dir():  # (it said "neither a file nor a built-in")
        raise UserError(f"workload {workload!r} is a directory, not a file")
    if workload not in BUILTIN:
        check_not_special(workload, "workload")
    if workload not in BUILTIN and not Path(workload).is_file():
        raise UserError(f"workload {workload!r} is neither a file nor a built-in ({', '.join(BUILTIN)})")
    policies = policies or CAPACITY_POLICIES
    profiles = profiles or ("a100-llama3-8b",)
    with _plugin_hint("capacity"):
        check_distinct_policies(policies, "--policy")  # (fails early on a bad spec, too)
    for prof in profiles:
        load_profile(prof)
    check_scoring(scoring)
    if routers and not any(n > 1 for n in replica_counts):  # nothing is silently ignored
        raise UserError(f"--router {routers[0]} has no effect without --replicas above 1 (a lone replica needs no "
                        "router); add e.g. --replicas 4")
    with _plugin_hint("capacity"):
        clusters = _clusters({"replicas": list(replica_counts or [1]), "routers": list(routers or ["round-robin"])},
                             "--router")
    check_out_dir(out, files=CAPACITY_FILES, dirs=("runs", "figures"))
    check_run_tree_out(out, "capacity")
    # (`-w OUT/capacity.csv` was replaced by the capacity table)
    for option, source in (("--workload", workload), *(("--profile", prof) for prof in profiles)):
        check_inputs_kept({option: source}, files=tuple(out / name for name in CAPACITY_FILES))
    from ltrsched.workloads import load_workload

    sizes = {n: num_requests or default_n * n for n, _ in clusters}  # replicas -> requests per run
    for line in _few_requests_warnings(sizes, max_num_seqs, default_n):
        click.echo(line, err=True)
    for size in sorted(set(sizes.values())):
        try:
            wl = load_workload(workload, num_requests=size, seed=first_seed)  # e.g. more requests than it holds
        except UserError as exc:
            if num_requests is not None:
                raise
            raise UserError(f"{exc} (runs have {default_n:,} requests per replica by default; "
                            "give fewer with -n, well above --max-num-seqs)") from None
        _check_slo_defined(slos, wl, workload)
        _check_slo_defined_per_seed(slos, workload, size, range(first_seed + 1, first_seed + k))
    from ltrsched.experiments.capacity import min_rate

    lowest = min_rate(max(sizes.values()))
    if start_rate < lowest:  # (its runs' arrivals would span beyond 1e8 s: refused after other runs had been done)
        raise UserError(f"--start-rate {start_rate:g} req/s spreads a run's {max(sizes.values()):,} requests over "
                        f"about {max(sizes.values()) / start_rate:.2g} s; give at least {lowest:.3g} req/s")
    templates = [RunSpec(experiment="capacity", setting=workload, label=p, workload=workload, policy=p, profile=prof,
                         num_requests=sizes[n], arrival="poisson", scoring=scoring,
                         max_num_batched_tokens=max_num_batched_tokens, max_num_seqs=max_num_seqs,
                         max_model_len=max_model_len, replicas=n, router=router)
                 for prof in profiles for n, router in clusters for p in policies]
    seeds = list(range(first_seed, first_seed + k))
    from ltrsched.sim.config import SimConfig, option_naming
    from ltrsched.sim.simulate import kv_capacity_blocks

    for prof, size in sorted({(t.profile, t.resolved_block_size()) for t in templates}):  # (capacity sets no block
        kv_capacity_blocks(SimConfig(profile=prof, block_size=size),  # size, utilization or KV capacity)
                           fix="pick a profile with more GPU memory (--profile)", naming=option_naming(capacity.params))

    from ltrsched.experiments.capacity import round_rate, specs_at
    from ltrsched.experiments.runner import check_runs

    # (a policy or router lacking a column, a request too long for --max-model-len: refused at the first round's run,
    # after the runs of the templates sorted ahead of it; the rounds after it change only the rate)
    check_runs([spec for t in templates for spec in specs_at(t, round_rate(start_rate), seeds)])
    from ltrsched.progress import progress_bar
    from ltrsched.signal_stops import SignalStops

    t0 = time.perf_counter()
    with SignalStops(), open_backend(backend, jobs, address) as runner:  # (kill: "aborted", exit 143, as Ctrl-C's)
        # (each round adds its runs to the total: tqdm's bar on a terminal, else a line about every 10 s)
        with progress_bar(0, "capacity", "runs", "done", unit="run") as bar:
            searches, stats = search_capacity(templates, slos, seeds, out, runner, start_rate=start_rate,
                                              tolerance=tolerance, max_rate=max_rate, bar=bar,
                                              prepare=_once_per_scoring(_prepare_predictors))
    elapsed = time.perf_counter() - t0
    table = capacity_table(searches, len(seeds))
    slo_text = ", ".join(str(s) for s in slos)
    sizes_text = "/".join(str(v) for v in sorted(set(sizes.values())))
    notes = [f"SLOs: {slo_text} (a rate meets one when the metric's mean over {len(seeds)} seeded runs "
             f"(seeds {seeds[0]}-{seeds[-1]}) of {sizes_text} {workload} requests is at most the limit)",
             f"capacity = the highest rate [req/s] seen to meet every SLO; bracket_high = the lowest seen to miss "
             f"one, at most {tolerance:.0%} above it; {limiting_note(searches)}",
             *none_notes(searches), *stopped_notes(searches)]
    previous = reported_metrics(out / "capacity-rates.csv")  # (the SLOs of the report this one replaces)
    write_table(table, out, "capacity", "Capacity under SLOs", notes, digits=3)
    from ltrsched import atomic

    atomic.write_csv(out / "capacity-rates.csv", rates_table(searches, slos))
    figures = capacity_figures(searches, slos, out / "figures")
    removed = []
    for path in stale_figures(out / "figures", previous, slos):  # (they sat beside this report as if its own)
        try:
            path.unlink()
            removed.append(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            click.echo(one_line(f"warning: could not remove {path}, a figure of the previous search's SLOs: "
                                f"{exc.strerror or exc}"), err=True)
    echo_table(table, tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True)
    click.echo(f"SLOs: {slo_text}; tolerance {tolerance:.0%}; {len(seeds)} seed{'' if len(seeds) == 1 else 's'} x {sizes_text} requests per rate")
    click.echo(f"{stats.line()}; {elapsed:.1f} s. Wrote {shown_path(out / 'capacity.md')}, "
               f"{shown_path(out / 'capacity.csv')}, {shown_path(out / 'capacity-rates.csv')} and {len(figures)} "
               f"figure(s) in {shown_path(out / 'figures')}")
    if removed:
        click.echo(f"Removed {len(removed)} figure(s) of the previous search's SLOs, which this one has not: "
                   f"{', '.join(shown_path(p) for p in removed)}")
