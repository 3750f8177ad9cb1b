"""A validation's engine runs as passes over every case, each pass on an engine start of its own.

A validation gates each simulator error by the engine's own repeat noise: the spread of a case's repeated
engine runs. Run back to back on one engine, a case's repeats are a minute or two apart on one engine start,
and their spread misses two things measured on the CPU engine (VALIDATION.md): two engine starts minutes
apart timed the same steps 8-11% apart, and the machine's speed drifted by 5-10% over a 20-minute validation.
A user who runs the same replay again later meets both, so a noise that leaves them out understates what an
engine run can be trusted to.

``ltrsched validate --spread-repeats`` runs repeat ``k`` of every case and policy in pass ``k``, each pass in a
fresh spawned process with its own engine (the way ``profile --runs`` measures its starts), one pass after
another, never two at once (they would time each other). Odd passes visit the cases and policies in reverse
order (A B ... B A), so each case's runs sit, on average, at the same time in the validation, and a drift
hits every case alike. Each pass saves its runs where the one-engine validation does; the caller reads them
back. A resumed validation (:mod:`ltrsched.validation.resume`) runs only the runs it did not keep: a pass with
none left starts no engine, and a pass's engine must be the kept runs' (checked before its first run).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ltrsched.errors import UserError
from ltrsched.policies import kv_bound
from ltrsched.validation.fresh_process import FreshProcesses


@dataclass(frozen=True)
class EngineFacts:
    """What the simulator's configuration takes from the engine a validation ran on.

    Attributes:
        host: the engine's description (host, CPU, threads, or the emulation's profile).
        num_gpu_blocks: KV blocks the engine holds, vLLM's null block excluded [blocks].
        block_size: tokens per KV block [tokens].
        max_resident_seqs: vLLM's max_num_seqs, the cap on requests holding KV [requests].
        max_model_len: longest prompt + output the engine takes [tokens].
    """

    host: str
    num_gpu_blocks: int
    block_size: int
    max_resident_seqs: int
    max_model_len: int

    @classmethod
    def of(cls, eng) -> "EngineFacts":
        """The facts of a started :class:`~ltrsched.validation.engines.Engine`."""
        return cls(eng.describe(), eng.num_gpu_blocks() - 1, eng.config.block_size, eng.config.vllm_max_num_seqs,
                   eng.max_model_len())

    def sim_config(self, profile, config):
        """The simulator's configuration that models this engine as the adapter drives it (vLLM V1 semantics,
        recompute preemption, no watermark, the engine's KV blocks, block size and caps), timed by ``profile``;
        ``config`` is the engine's :class:`~ltrsched.engine.config.EngineConfig` (its token budget and sequence
        cap)."""
        from ltrsched.sim import SimConfig

        return SimConfig(profile=profile, max_num_batched_tokens=config.max_num_batched_tokens,
                         max_num_seqs=config.max_num_seqs, block_size=self.block_size,
                         num_gpu_blocks=self.num_gpu_blocks, max_resident_seqs=self.max_resident_seqs,
                         # (at most what its blocks hold, where a sliding window's layers let vLLM take more: the
                         # simulator, whose every layer attends fully, refuses a longer one as vLLM then would)
                         max_model_len=kv_bound.usable_context(self.num_gpu_blocks, self.block_size, self.max_model_len),
                         watermark=0.0, preemption="recompute",
                         semantics="vllm-v1")

    def same_engine(self, other: "EngineFacts") -> bool:
        """Both starts built the same engine (the host's description, which names its load, aside)."""
        return (self.num_gpu_blocks, self.block_size, self.max_resident_seqs, self.max_model_len) == (
            other.num_gpu_blocks, other.block_size, other.max_resident_seqs, other.max_model_len)


@dataclass
class EnginePass:
    """One pass: the engine it ran on, and each case's workload as that engine served it (``--prompts text``
    gives prompts the served model's token counts, which the simulator must see too)."""

    facts: EngineFacts
    workloads: list


def run_pass(engine: dict, cases: list[tuple[str, Any]], specs: list[str], run_dirs: dict[tuple[str, str], Path],
             repeat: int, command: str, reverse: bool, progress: bool = False, meta: dict | None = None,
             expect=None) -> EnginePass:
    """Start the engine ``engine`` (``start_engine``'s options) in this process and run every case (name,
    workload) with every policy spec in ``run_dirs`` once, as repeat ``repeat``; each run is saved in
    ``run_dirs[case, spec]`` with ``meta``. ``reverse`` visits the (case, policy) pairs last to first. ``expect``:
    a :class:`~ltrsched.validation.resume.KeptEngine`, the engine this one must be (a resumed validation's kept
    runs', or an earlier pass's), checked before a run starts."""
    from ltrsched.validation.engines import start_engine
    with start_engine(**engine) as eng:
        return _pass_on(eng, cases, specs, run_dirs, repeat, command, reverse, progress, meta, expect)


def _pass_on(eng, cases, specs, run_dirs, repeat: int, command: str, reverse: bool, progress: bool, meta, expect):
    """:func:`run_pass` on the engine it started."""
    prepared = [eng.prepare(wl) for _, wl in cases]
    facts = EngineFacts.of(eng)
    if expect is not None:
        expect.check(facts, {case: wl for (case, _), wl in zip(cases, prepared)}, f"engine start {repeat + 1}")
    pairs = [(i, spec) for i in range(len(cases)) for spec in specs if (cases[i][0], spec) in run_dirs]
    with runs_progress(len(pairs), f"engine start {repeat + 1}", progress) as bar:
        for i, spec in reversed(pairs) if reverse else pairs:
            case = cases[i][0]
            run_one(eng, prepared[i], spec, run_dirs[case, spec], progress, case=case, repeat=repeat,
                    engine_start=repeat, command=command, engine_facts=asdict(facts), **(meta or {}))
            bar.update(1)
    return EnginePass(facts, prepared)


def runs_progress(total: int, label: str, progress: bool = True):
    """The display of ``total`` engine runs done (``LABEL: 3 of 12 engine runs done, 41 s`` on a stderr that is not
    a terminal: :func:`ltrsched.progress.progress_bar`; each run shows its own requests finished too). A validation's
    runs are seconds to minutes each and an hour together: a line per run would flood, none said nothing for the
    hour."""
    from ltrsched.progress import progress_bar

    return progress_bar(total, label, "engine runs", "done", unit="run", enabled=progress and total > 0)


def run_one(eng, workload, spec: str, run_dir: Path, progress: bool, **meta):
    """One engine run of ``workload`` under policy ``spec`` (``progress``: its requests finished, as ``engine SPEC
    on CASE, repeat K``), saved in ``run_dir`` with ``meta`` and when and
    where it ran (``started_unix_s``: its start [s since the epoch]; ``engine_pid``: the engine's process, the
    same for runs that shared an engine start). Returns the run. An earlier ``summary.json`` there is removed
    first: the run is complete when its own ``summary.json`` exists (:meth:`RunResult.save` writes it last).

    A run stopped for preemption thrash (:class:`~ltrsched.policies.batching.ThrashError`) raises that error
    naming the run (policy, case: its arrivals and load, repeat, directory), as a simulator sweep names its run:
    the replay's own line named none, so among a validation's runs the user could not tell which had stopped."""
    from ltrsched.policies import make_policy
    from ltrsched.policies.batching import thrash_named

    (run_dir / "summary.json").unlink(missing_ok=True)
    started = time.time()
    case, repeat = meta.get("case"), meta.get("repeat")
    label = f"engine {spec}" + (f" on {case}" if case is not None else "") + (
        f", repeat {repeat + 1}" if repeat is not None else "")
    with thrash_named(f"engine run {describe_engine_run(spec, case, repeat, run_dir)}"):
        result = eng.run(workload, make_policy(spec), progress=progress, progress_label=label)
    result.meta.update(meta, started_unix_s=started, engine_pid=os.getpid())
    result.save(run_dir)
    return result


def describe_engine_run(spec: str, case: str | None, repeat: int | None, run_dir: Path) -> str:
    """An engine run in one short phrase, e.g. ``fcfs on poisson@5/s, repeat 2 (val/runs/poisson@5_s/fcfs/engine-1)``
    (``repeat``: counted from 0, shown from 1; the case names the arrivals and their load)."""
    on = f" on {case}" if case is not None else ""
    rep = f", repeat {repeat + 1}" if repeat is not None else ""
    return f"{spec}{on}{rep} ({run_dir})"


def run_passes(engine: dict, cases: list[tuple[str, Any]], specs: list[str], run_dir, repeats: int,
               command: str, progress: bool = False, on_pass=None, meta: dict | None = None,
               kept: dict | None = None) -> list[EnginePass | None]:
    """``repeats`` passes of :func:`run_pass`, one after another, each in a fresh process (``spawn``: a new
    interpreter and engine); pass ``k`` saves its runs in ``run_dir(case, spec, k)`` and odd passes run in
    reverse. ``kept``: a resumed validation's complete runs ((case, spec, k) -> run), not run again; a pass
    with nothing left to run starts no engine (None in the list). ``on_pass(k, pass)`` is called after each
    pass (None: not run). Every pass must have built the same engine and served the same workloads (a one-line error
    otherwise: their runs would not be repeats of one another)."""
    from ltrsched.validation.resume import KeptEngine

    kept = kept or {}
    expected = KeptEngine.of(kept)
    out: list[EnginePass | None] = []
    first: EnginePass | None = None
    with FreshProcesses() as processes:
        for k in range(repeats):
            dirs = {(case, spec): run_dir(case, spec, k) for case, _ in cases for spec in specs
                    if (case, spec, k) not in kept}
            if not dirs:
                out.append(None)
                if on_pass is not None:
                    on_pass(k, None)
                continue
            done = processes.run(f"engine start {k + 1} of {repeats}", run_pass, engine, cases, specs, dirs, k,
                                 command, k % 2 == 1, progress, meta, expected)
            if first is not None and not done.facts.same_engine(first.facts):
                raise UserError(f"engine start {k + 1} built another engine than the first ({done.facts} vs "
                                f"{first.facts}): its runs are not repeats of the first's")
            if first is not None and any(not a.df.equals(b.df) for a, b in zip(done.workloads, first.workloads)):
                raise UserError(f"engine start {k + 1} served other prompts than the first (its tokenizer or chat "
                                "template changed between starts): its runs are not repeats of the first's")
            if first is None:
                first = done
                if expected is None:  # later passes refuse another engine before they run, not after
                    expected = KeptEngine.of_pass(cases, done)
            out.append(done)
            if on_pass is not None:
                on_pass(k, done)
    return out
