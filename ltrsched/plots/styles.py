"""One colour and dash pattern per plotted series (a policy's line), the same in every panel of a figure.

matplotlib's own colour cycle starts over in each panel (axes), so a policy that came second in one panel and
first in the next changed colour between them. Here the style is a function of the series' name over the whole
figure, given in order of first appearance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

#: Dash patterns, in the order they are taken once a palette's colours are used up.
LINESTYLES = ("-", "--", ":", "-.")


@dataclass(frozen=True)
class SeriesStyle:
    """How one series is drawn: a colour (hex ``#rrggbb``) and a matplotlib line style."""

    color: str
    linestyle: str


def _palette(count: int, avoid: Iterable[str]) -> list[str]:
    """The colours to draw ``count`` series with (hex), leaving out those in ``avoid``: tab10's where that is enough,
    else tab20's (whose pairs are a dark and a light shade of one hue)."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    avoided = {to_hex(c) for c in avoid}
    for name in ("tab10", "tab20"):
        colours = [c for c in (to_hex(rgb) for rgb in colormaps[name].colors) if c not in avoided]
        if count <= len(colours) or name == "tab20":
            return colours or [to_hex("black")]
    raise AssertionError("unreachable")


def series_styles(names: Iterable[str], avoid: Iterable[str] = ()) -> dict[str, SeriesStyle]:
    """A style per distinct name of ``names`` (first appearance first; the same name, the same style). The first
    series take the palette's colours with solid lines (tab10 up to 10 series, tab20 beyond); the next ones take
    the colours again with dashes, dots, then dash-dots (80 distinct styles with tab20), and past that the styles
    repeat in the same order. ``avoid`` holds colours other series of the figure already use."""
    order = list(dict.fromkeys(names))
    colours = _palette(len(order), avoid)
    return {name: SeriesStyle(colours[i % len(colours)], LINESTYLES[(i // len(colours)) % len(LINESTYLES)])
            for i, name in enumerate(order)}

