"""``ltrsched profiles``: list step-time profiles, their KV capacity and sample step times."""

from __future__ import annotations

import click

from ltrsched.errors import UserError
from ltrsched.names import one_line
from ltrsched.sim.profiles.io import builtin_profiles, load_profile
from ltrsched.sim.profiles.model import StepTimeProfile
from ltrsched.sim.step_shape import StepShape

#: context length of every sequence in the sample decode steps [tokens].
SAMPLE_CONTEXT = 512


def decode_shape(batch: int, context: int = SAMPLE_CONTEXT) -> StepShape:
    """A decode step of ``batch`` sequences, each with ``context`` KV tokens (the new one included)."""
    return StepShape(num_decode_seqs=batch, decode_context_tokens=batch * context)


def prefill_shape(tokens: int) -> StepShape:
    """A prefill step of one fresh prompt of ``tokens`` tokens (causal attention within it)."""
    return StepShape(num_prefill_tokens=tokens, num_prefill_seqs=1,
                     prefill_attention_pairs=tokens * (tokens + 1) / 2)


#: (label, shape) of the sample steps ``--steps`` prints.
SAMPLE_STEPS: tuple[tuple[str, StepShape], ...] = (
    ("decode b=1", decode_shape(1)),
    ("decode b=32", decode_shape(32)),
    ("decode b=256", decode_shape(256)),
    ("prefill 768", prefill_shape(768)),
    ("prefill 2048", prefill_shape(2048)),
)


def _rows(profiles: list[StepTimeProfile], block_size: int, util: float, steps: bool) -> list[list[str]]:
    header = ["name", "gpu", "model", "tp", "kv_blocks", "kv_gib"]
    if steps:
        header += [f"{label} [ms]" for label, _ in SAMPLE_STEPS]
    header.append("description")
    rows = [header]
    for p in profiles:
        blocks = p.num_gpu_blocks(block_size=block_size, gpu_memory_utilization=util)
        if blocks <= 0:  # (printed as 0 blocks, 0.0 GiB and exit 0, where simulate refused the same setting)
            raise UserError(f"profile {p.name!r} leaves no GPU memory for one KV block of {block_size} tokens at "
                            f"--gpu-memory-utilization {util:g}; use a smaller --block-size or a larger "
                            "--gpu-memory-utilization")
        # (a profile file's texts on one line each: a line break in its name or description split the table's row,
        # and an ESC in it recoloured the terminal)
        row = [one_line(p.name), one_line(p.gpu), one_line(p.model), str(p.tensor_parallel), str(blocks),
               f"{blocks * block_size * p.kv_bytes_per_token / 2**30:.1f}"]
        if steps:
            row += [f"{p.step_time(shape) * 1e3:.2f}" for _, shape in SAMPLE_STEPS]
        row.append(one_line(p.description))
        rows.append(row)
    return rows


@click.command("profiles")
@click.argument("profiles", nargs=-1, metavar="[NAME_OR_FILE]...")
@click.option("--steps", is_flag=True,
              help=f"Also print sample step times: decode at batch 1/32/256 with {SAMPLE_CONTEXT}-token "
                   "contexts, prefill of 768 and 2048 tokens.")
@click.option("--block-size", type=int, default=16, show_default=True, help="KV block size [tokens].")
@click.option("--gpu-memory-utilization", type=float, default=0.9, show_default=True,
              help="Fraction of GPU memory the engine may use.")
def profiles(profiles: tuple[str, ...], steps: bool, block_size: int, gpu_memory_utilization: float) -> None:
    """List step-time profiles (built-in, or the given names / profile JSON files): GPU, model,
    tensor parallelism, KV capacity per GPU and description."""
    from ltrsched.policies.limit_rules import memory_fraction, not_positive, option_name

    # (named as given: the KV sizing's own check said "block_size must be a positive integer")
    reason = (not_positive("block_size", block_size, option_name)
              or memory_fraction(gpu_memory_utilization, option_name))
    if reason is not None:
        raise UserError(reason)
    names = list(profiles) or list(builtin_profiles())
    loaded = [load_profile(n) for n in names]
    rows = _rows(loaded, block_size, gpu_memory_utilization, steps)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [c.ljust(w) for c, w in zip(row[:-1], widths)]
        click.echo("  ".join(cells + [row[-1]]).rstrip())
