"""``ltrsched routers``: list the registered routers and their spec parameters."""

from __future__ import annotations

import click

from ltrsched.doc_summary import doc_summary, listing_lines


@click.command()
@click.option("--plugin", multiple=True, help="Module or .py file registering extra routers (or policies).")
def routers(plugin) -> None:
    """List cluster routers (use with `simulate --replicas N --router SPEC`)."""
    from ltrsched.policies import load_plugin
    from ltrsched.routers import available
    from ltrsched.routers.registry import signature_text

    for p in plugin:
        load_plugin(p)
    rows = [(signature_text(cls), doc_summary(cls)) for cls in available().values()]
    click.echo("\n".join(listing_lines(rows, 36)))
