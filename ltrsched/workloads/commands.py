"""``ltrsched workloads``: list the built-in workloads (and their length statistics)."""

from __future__ import annotations

import click


@click.command()
@click.option("--stats", is_flag=True, help="Load each workload and print its length statistics.")
def workloads(stats: bool) -> None:
    """List built-in workloads. Files (.parquet, .jsonl, ShareGPT .json, .csv traces) work too."""
    from ltrsched.workloads import builtin_workloads, load_workload

    for name, desc in builtin_workloads().items():
        line = f"{name:<16} {desc}"
        if stats:
            df = load_workload(name).df
            line += (f"\n{'':<16} n={df.height}  prompt mean {df['prompt_tokens'].mean():.0f}  "
                     f"output mean {df['output_tokens'].mean():.0f}  p90 {df['output_tokens'].quantile(0.9):.0f}  "
                     f"max {df['output_tokens'].max()}")
        click.echo(line)
