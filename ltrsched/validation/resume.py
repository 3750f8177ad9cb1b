"""Resume an interrupted ``ltrsched validate``: keep the engine runs it completed, run only the others.

An hour-long validation on the CPU engine that dies (killed, a reboot, Ctrl-C, an engine error) has saved
each engine run it completed in its run directory. Run again into the same ``--out`` with the same
arguments, it keeps those runs and runs only the missing ones (``--resume``, or by default when the
directory's manifest records this same validation as unfinished; ``--no-resume`` measures everything again).
Without either flag an unfinished *other* validation with completed engine runs is refused, not replaced: a
mistyped rerun would delete the runs it came to resume.

*The same validation* means every argument the same (:func:`validation_arguments`: each option as given,
the cases the rates became, the engine configuration they resolve to), and the same inputs: the workloads'
requests (a SHA-256 of each case's request table, so a workload file edited in place is another validation),
the ``--emulate`` profile's content, the model directory's files (their content; weights over 64 MiB by size and
modification time), the machine (CPU model and count, memory), the ltrsched and vLLM versions and ltrsched's own code (its ``.py`` files). A validation that differs in any
of them is refused with ``--resume`` (one line naming the first difference), never mixed in.

An engine run is complete when its ``summary.json`` exists (:meth:`RunResult.save` writes it last, and
:func:`~ltrsched.validation.engine_passes.run_one` removes it before a run starts), records this validation's
digest (:func:`arguments_digest`), its case and repeat, and the engine it ran on (``engine_facts``). Anything
else in a run directory is an incomplete run: it is run again. The simulator's runs are cheap and always
rerun. A resumed run's engine must be the one the kept runs ran on (same KV blocks, block size, caps), and
serve the same prompts; else the resume is refused before a run starts.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ltrsched import strict_json
from ltrsched.errors import UserError

#: Derived entries of :func:`validation_arguments` (not options), and how a difference in them reads.
DERIVED = {
    "cases": None,  # (shown as values: the cases' names)
    "engine configuration": "the engine configuration the options resolve to differs (the platform, or a default)",
    "workload requests": "the workload's requests differ (its file, or the code that builds it, changed)",
    "emulated profile": "the --emulate profile's content differs",
    "model files": "the model directory's files differ",
    "machine": None,
    "ltrsched": None,
    "ltrsched code": "ltrsched's own code differs (a .py file of the package changed since those runs)",
    "vLLM": None,
    "run directories": "its run directories differ",
}


def _option(key: str) -> str:
    """An engine option's name on the command line, from its keyword (``emulate_profile`` is ``--emulate``)."""
    return "--emulate" if key == "emulate_profile" else "--" + key.replace("_", "-")


def table_digest(df) -> str:
    """SHA-256 of a polars DataFrame's columns and values (its uncompressed Arrow IPC bytes)."""
    buf = io.BytesIO()
    df.write_ipc(buf, compression="uncompressed")
    return hashlib.sha256(buf.getvalue()).hexdigest()


#: Model files up to this size are identified by their content, larger ones (weights) by size and time [bytes].
HASHED_MODEL_FILE_BYTES = 64 << 20


def _model_files(model_dir: str) -> str:
    """SHA-256 over a model directory's files: each one's name and its content's SHA-256 (config, tokenizer,
    chat template: a built-in model's config.json is rewritten, same bytes, by every command), or for a file
    over :data:`HASHED_MODEL_FILE_BYTES` (weights: gigabytes for a real model) its size and modification time."""
    from ltrsched.fingerprint import file_digest

    root = Path(model_dir)
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            st = p.stat()
            what = file_digest(p) if st.st_size <= HASHED_MODEL_FILE_BYTES else f"{st.st_size}\0{st.st_mtime_ns}"
            h.update(f"{p.relative_to(root).as_posix()}\0{what}\n".encode())
    return h.hexdigest()


def validation_arguments(options: dict[str, Any], engine: dict[str, Any], config, cases: list[str],
                         workloads: list, run_dirs: list[str]) -> dict[str, Any]:
    """What makes a validation the one it is, as JSON values by the name a user knows them by: ``options``
    (validate's own options, by their flag, as given), ``engine`` (the engine options' keywords and values),
    then the derived entries of :data:`DERIVED`. ``config``: the resolved
    :class:`~ltrsched.engine.config.EngineConfig`; ``workloads``: each case's workload; ``run_dirs``: the run
    directories relative to ``--out``."""
    from ltrsched import __version__
    from ltrsched.engine.config import model_dir
    from ltrsched.engine.platform import cpu_model_name, memory_gib
    from ltrsched.engine.vllm_compat import vllm_distribution

    args = dict(options)
    args.update({_option(k): v for k, v in engine.items()})
    args["cases"] = list(cases)
    args["engine configuration"] = asdict(config)
    args["workload requests"] = [table_digest(wl.df) for wl in workloads]
    if engine.get("emulate_profile") is not None:
        from ltrsched.sim.profiles import load_profile
        from ltrsched.sim.profiles.io import profile_to_dict

        profile = profile_to_dict(load_profile(engine["emulate_profile"]))
        args["emulated profile"] = hashlib.sha256(strict_json.dumps(profile, sort_keys=True).encode()).hexdigest()
    else:  # the real engine: its model's files, and the machine it computes on
        args["model files"] = _model_files(model_dir(config.model))
        args["machine"] = f"{cpu_model_name()}, {os.cpu_count()} CPUs, {memory_gib():.1f} GiB"
    args["ltrsched"] = __version__
    args["ltrsched code"] = package_code_digest()
    found = vllm_distribution()
    args["vLLM"] = " ".join(found) if found else None
    args["run directories"] = list(run_dirs)
    return json.loads(strict_json.dumps(args))  # (as the manifest reads back: lists, not tuples)


def package_code_digest(root: Path | None = None) -> str:
    """SHA-256 of the ltrsched package's ``.py`` files (their paths and bytes; ``root``: the package's directory,
    by default the one imported): the version string stays the same while the adapter or a policy is edited, and
    runs measured by other code are another validation."""
    if root is None:
        import ltrsched

        root = Path(ltrsched.__file__).parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def arguments_digest(arguments: dict[str, Any]) -> str:
    """A short hash of :func:`validation_arguments` that each engine run records (16 hex digits)."""
    return hashlib.sha256(strict_json.dumps(arguments, sort_keys=True).encode()).hexdigest()[:16]


def _show(value: Any) -> str:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "'" + ";".join(value) + "'"
    return "not given" if value is None else repr(value)


def first_difference(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    """What differs between two validations' :func:`validation_arguments`, in a few words (the first
    difference, options before derived entries, and how many more), or None if they are the same."""
    missing = object()
    keys = list(new) + [k for k in old if k not in new]
    keys.sort(key=lambda k: k in DERIVED)  # (stable: options in their order first)
    diffs = [k for k in keys if old.get(k, missing) != new.get(k, missing)]
    if not diffs:
        return None
    k = diffs[0]
    what = DERIVED.get(k) or f"{k} {_show(old.get(k))} there, {_show(new.get(k))} now"
    more = f", and {len(diffs) - 1} more difference{'s' if len(diffs) > 2 else ''}" if len(diffs) > 1 else ""
    return what + more


def kept_runs(dirs: dict[tuple, Path], digest: str, request_ids: dict[str, list] | None = None,
              not_kept: list[str] | None = None) -> dict[tuple, Any]:
    """The complete engine runs of this validation among ``dirs`` ((case, spec, repeat) -> run directory):
    each loads, records ``digest``, its case and repeat, and its engine's facts, and holds what a run of this
    validation holds (:func:`kept_run_problem`; ``request_ids``: each case's workload's request ids). Others are left
    out, to run again; ``not_kept`` gets "DIR: why" for each that was complete in name only (edited by hand, or
    damaged)."""
    from ltrsched.results import RunResult

    kept = {}
    for (case, spec, k), d in dirs.items():
        if not (d / "summary.json").is_file():
            continue
        try:
            run = RunResult.load(d)
        except UserError:  # (damaged: an incomplete run)
            continue
        m = run.meta
        if not (m.get("validation") == digest and m.get("case") == case and m.get("repeat") == k):
            continue
        problem = _other_policy(run, spec) or kept_run_problem(run, None if request_ids is None else
                                                                request_ids.get(case))
        if problem is None:
            kept[case, spec, k] = run
        elif not_kept is not None:
            not_kept.append(f"{d}: {problem}")
    return kept


def _other_policy(run, spec: str) -> str | None:
    """Why ``run`` is no run of policy ``spec`` (its recorded policy, as the engine's results write it: the policy's
    own spec), or None. (Another policy's run copied into this one's directory was reported as this policy's.)"""
    from ltrsched.policies import make_policy

    served = run.meta.get("policy")
    try:
        expected = make_policy(spec).spec()
    except (UserError, ValueError):  # (the spec is checked before: a policy of a plugin gone since, say)
        return None
    if served != expected:
        return f"it ran the policy {strict_json.shown(served)}, not {expected!r}"
    return None


def kept_run_problem(run, request_ids: list | None = None) -> str | None:
    """Why an engine run that records this validation cannot be kept, or None: its engine facts are not the fields
    :class:`~ltrsched.validation.engine_passes.EngineFacts` has (a TypeError traceback), a summary value is no
    measurement (text: a TypeError traceback in the report; a negative time), its requests are not the case's
    workload's (``request_ids``; None: not checked), it lacks a value the report compares (:func:`compared_keys`,
    null where undefined), or its step log's step shapes or cycles are not numbers. A run
    edited by hand, or by other code, is measured again rather than reported."""
    import dataclasses
    import math

    from ltrsched.engine.step_log import SHAPE_FIELDS
    from ltrsched.validation.engine_passes import EngineFacts

    facts = run.meta.get("engine_facts")
    names = [f.name for f in dataclasses.fields(EngineFacts)]
    if not isinstance(facts, dict) or sorted(facts) != sorted(names):
        return f"its engine facts are not {', '.join(names)}"
    for name in names:
        value = facts[name]
        if not (isinstance(value, str) if name == "host" else type(value) is int and value >= 1):
            return f"its engine fact {name} is {strict_json.shown(value)}, not " + (
                "text" if name == "host" else "a whole number >= 1")
    missing = [key for key in compared_keys() if key not in run.summary]
    if missing:  # (a summary emptied by hand: a report of n/a for the run)
        more = f" and {len(missing) - 1} more value(s)" if len(missing) > 1 else ""
        return f"its summary lacks {missing[0]}{more}"
    for key, value in run.summary.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value) or value < 0):
            return f"its summary's {key} is {strict_json.shown(value)}, not a measurement (a finite number >= 0)"
    if request_ids is not None:
        served = run.requests["request_id"].to_list() if "request_id" in run.requests.columns else []
        if sorted(map(repr, served)) != sorted(map(repr, request_ids)):
            return (f"its requests.parquet holds {len(served):,} requests, not the case's {len(request_ids):,} (its "
                    "request ids differ)")
    steps = run.steps
    for column in ("cycle", *SHAPE_FIELDS):
        if steps is not None and column in steps.columns and not steps[column].dtype.is_numeric():
            return f"its steps.parquet's column {column} holds {steps[column].dtype}, not numbers"
    return None


def compared_keys() -> list[str]:
    """The summary values a validation's report compares (:func:`ltrsched.validation.compare.compare_runs`), which
    every engine run's summary holds (null where undefined, e.g. no request finished)."""
    from ltrsched.validation.compare import METRICS, RUN_METRICS, STATS

    return [f"{m}_{s}" for m in METRICS for s in STATS] + list(RUN_METRICS)


def engine_facts(run):
    """The :class:`~ltrsched.validation.engine_passes.EngineFacts` a kept run recorded."""
    from ltrsched.validation.engine_passes import EngineFacts

    return EngineFacts(**run.meta["engine_facts"])


def served_workload(workload, run, prompts: str):
    """``workload`` as the engine that made ``run`` served it (see ``Engine.prepare``), without an engine:
    with ``--prompts text`` the prompt lengths are the served model's token counts, which ``run`` recorded."""
    if prompts != "text":
        return workload
    import polars as pl

    served = dict(zip(run.requests["request_id"].to_list(), run.requests["prompt_tokens"].to_list()))
    df = workload.df
    if "text_prompt_tokens" not in df.columns:
        df = df.with_columns(text_prompt_tokens=df["prompt_tokens"])
    tokens = [served.get(i) for i in df["request_id"].to_list()]
    if any(t is None for t in tokens):
        raise UserError(f"the kept engine run in case {run.meta.get('case')!r} lacks some of the workload's requests: "
                        "rerun the validation with --no-resume")
    return workload.with_df(df.with_columns(prompt_tokens=pl.Series(tokens, dtype=pl.Int64)), prompts="text")


@dataclass
class KeptEngine:
    """What the engine of a resumed validation must be to run beside its kept runs: the kept runs' engine
    (``facts``) and, by case, the prompt length each request was served with (``prompt_tokens``: request id ->
    tokens). Small, for a pass's fresh process."""

    facts: Any
    prompt_tokens: dict[str, dict[int, int]]

    @classmethod
    def of(cls, kept: dict[tuple, Any]) -> "KeptEngine | None":
        """Of the kept runs ((case, spec, repeat) -> run); None when none is kept."""
        if not kept:
            return None
        tokens = {}
        for (case, _, _), run in kept.items():
            if case not in tokens:
                tokens[case] = dict(zip(run.requests["request_id"].to_list(), run.requests["prompt_tokens"].to_list()))
        return cls(engine_facts(next(iter(kept.values()))), tokens)

    @classmethod
    def of_pass(cls, cases: list[tuple[str, Any]], done) -> "KeptEngine":
        """Of a pass that ran (:class:`~ltrsched.validation.engine_passes.EnginePass`) over ``cases``."""
        return cls(done.facts, {case: dict(zip(wl.df["request_id"].to_list(), wl.df["prompt_tokens"].to_list()))
                                for (case, _), wl in zip(cases, done.workloads)})

    def check(self, facts, prepared: dict[str, Any], where: str) -> None:
        """A :class:`UserError` before anything runs if the engine started now (``facts``, and its workloads as
        served, by case) is not the kept runs' engine: other KV blocks or caps, or other prompt lengths."""
        if not facts.same_engine(self.facts):
            raise UserError(f"{where} built another engine than the kept runs' ({facts} vs {self.facts}): they would "
                            "not be repeats of one another; rerun the validation with --no-resume")
        for case, served in self.prompt_tokens.items():
            wl = prepared.get(case)
            if wl is not None and any(served.get(i) != t for i, t in zip(wl.df["request_id"].to_list(),
                                                                        wl.df["prompt_tokens"].to_list())):
                raise UserError(f"{where} serves other prompt lengths in case {case!r} than the kept runs (the "
                                "tokenizer or chat template changed): rerun the validation with --no-resume")
