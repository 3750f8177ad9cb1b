"""``ltrsched workloads``: list the built-in workloads, and the length statistics of them or of given files."""

from __future__ import annotations

import click


@click.command()
@click.argument("names", nargs=-1, metavar="[WORKLOAD]...")
@click.option("--stats", is_flag=True, help="Load each workload and print its length statistics.")
def workloads(names: tuple[str, ...], stats: bool) -> None:
    """List built-in workloads. Files (.parquet, .jsonl, ShareGPT .json, .csv traces) work too: give WORKLOAD
    arguments (built-in names or files) to print the length statistics of those alone."""
    from ltrsched.errors import UserError, first_repeat
    from ltrsched.workloads import builtin_workloads, load_workload

    twice = first_repeat(names)
    if twice is not None:
        raise UserError(f"workload {twice} is given twice")
    builtins = builtin_workloads()
    for name in names or builtins:
        line = f"{name:<16} {builtins.get(name, 'file')}"
        if stats or names:
            line += f"\n{'':<16} {_stats_line(load_workload(name).df)}"
        click.echo(line)


def _stats_line(df) -> str:
    """A workload's request count, prompt and output lengths [tokens] and, where it has them, the span of its own
    arrival times [s]."""
    line = (f"n={df.height}  prompt mean {df['prompt_tokens'].mean():.0f}  max {df['prompt_tokens'].max()}  "
            f"output mean {df['output_tokens'].mean():.0f}  p90 {df['output_tokens'].quantile(0.9):.0f}  "
            f"max {df['output_tokens'].max()}")
    if "arrival_time" in df.columns and df["arrival_time"].max() > df["arrival_time"].min():
        line += f"  arrivals over {df['arrival_time'].max() - df['arrival_time'].min():.4g} s"
    return line
