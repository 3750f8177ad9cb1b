"""``ltrsched policies``: list the registered policies and their spec parameters."""

from __future__ import annotations

import click

from ltrsched.doc_summary import doc_summary, listing_lines


@click.command()
@click.option("--plugin", multiple=True, help="Module or .py file registering extra policies.")
def policies(plugin) -> None:
    """List scheduling policies. Any policy takes starve=T[,quantum=Q] for starvation prevention."""
    from ltrsched.policies import available, load_plugin
    from ltrsched.policies.registry import signature_text

    for p in plugin:
        load_plugin(p)
    rows = [(signature_text(cls), doc_summary(cls)) for cls in available().values()]
    click.echo("\n".join(listing_lines(rows, 48)))
