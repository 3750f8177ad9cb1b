"""capacity's figures: one colour and dash per configuration across its figures (not ``C{i % 10}``, which repeated
past 10 searches), and configuration names drawn as written (a ``$...$`` policy name was typeset as math, and an
unknown command there ended the command in a mathtext traceback). Searches are built by hand: no runs."""

from __future__ import annotations

import dataclasses

import pytest

from ltrsched.experiments.capacity import Search, Slo, evaluate
from ltrsched.experiments.capacity_report import capacity_figures
from ltrsched.experiments.runspec import RunSpec

TEMPLATE = RunSpec("capacity", "s", "fcfs", workload="lmsys-like", policy="fcfs", profile="a100-llama3-8b",
                   num_requests=300, arrival="poisson")
SLOS = [Slo("ttft_p90", 1.0), Slo("tpot_p90", 0.1)]


def search(policy: str, capacity: float) -> Search:
    """A finished search whose metric is ``rate / capacity`` (so ``capacity`` meets both SLOs and twice it does not)."""
    s = Search(dataclasses.replace(TEMPLATE, policy=policy, label=policy), start_rate=capacity, tolerance=0.05,
               max_rate=1024.0)
    for rate in (capacity, 2 * capacity):
        s.points[rate] = evaluate(SLOS, rate, [{"ttft_p90": rate / capacity, "tpot_p90": 0.1 * rate / capacity}])
    s.low, s.high, s.done = capacity, 2 * capacity, True
    return s


@pytest.fixture
def drawn(monkeypatch):
    """Each figure's lines as (label, colour, dash) and its legend's texts, read back when the figure is written."""
    from matplotlib.colors import to_hex

    from ltrsched import atomic

    figures = []
    write = atomic.write_figure

    def record(path, fig, **kwargs):
        ax = fig.axes[0]
        lines = [(ln.get_label(), to_hex(ln.get_color()), ln.get_linestyle()) for ln in ax.get_lines()
                 if ln.get_marker() == "o"]
        figures.append((lines, [t.get_text() for t in ax.get_legend().get_texts()]))
        return write(path, fig, **kwargs)

    monkeypatch.setattr(atomic, "write_figure", record)
    return figures


def test_more_than_ten_configurations_are_drawn_each_in_its_own_style_the_same_in_every_figure(tmp_path, drawn):
    searches = [search(f"ltr:tau=0.{i + 10}", 1.0 + i) for i in range(14)]
    paths = capacity_figures(searches, SLOS, tmp_path)
    assert [p.name for p in paths] == ["capacity-ttft_p90.png", "capacity-tpot_p90.png"]
    (first, _), (second, _) = drawn
    assert len(first) == 14 and len({(colour, dash) for _, colour, dash in first}) == 14
    assert first == second  # the same configuration, the same style, in each SLO's figure


def test_a_policy_named_with_dollar_signs_is_drawn_as_written(tmp_path, drawn):
    names = ["$\\notacommand$", "$x$"]
    paths = capacity_figures([search(n, 2.0) for n in names], SLOS, tmp_path)
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)
    lines, legend = drawn[0]
    assert [label for label, _, _ in lines] == ["\\$\\notacommand\\$", "\\$x\\$"]  # escaped: drawn literally
    assert legend[:2] == ["\\$\\notacommand\\$", "\\$x\\$"]


def test_a_configuration_with_no_finite_value_is_marked_not_a_traceback(tmp_path, monkeypatch):
    """Every rate of a configuration with its metric undefined (no request finished: counted as infinitely late):
    its line had no point to draw, the log rate axis no value to scale, and the figure ended in a ValueError
    traceback. Now its rates are marked at the top (``^``) and the other configuration's line is drawn as before."""
    from ltrsched import atomic
    from ltrsched.experiments.capacity_report import NO_VALUE_TEXT

    empty = Search(dataclasses.replace(TEMPLATE, policy="srtf", label="srtf"), start_rate=1.0, tolerance=0.05,
                   max_rate=1024.0)
    for rate in (0.5, 1.0):
        empty.points[rate] = evaluate(SLOS, rate, [{"ttft_p90": None, "tpot_p90": float("nan")}])
    empty.low, empty.high, empty.done = None, 0.5, True
    figures = []
    write = atomic.write_figure

    def record(path, fig, **kwargs):
        ax = fig.axes[0]
        figures.append(([(ln.get_marker(), list(ln.get_xdata())) for ln in ax.get_lines()],
                        [t.get_text() for t in ax.get_legend().get_texts()]))
        return write(path, fig, **kwargs)

    monkeypatch.setattr(atomic, "write_figure", record)
    for searches in ([empty], [search("fcfs", 2.0), empty]):
        figures.clear()
        paths = capacity_figures(searches, SLOS, tmp_path)
        assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)
        for lines, legend in figures:
            assert ("^", [0.5, 1.0]) in lines and NO_VALUE_TEXT in legend
            assert ("o", []) in lines  # srtf's line: no finite point
            assert ("o", [2.0, 4.0]) in lines or len(searches) == 1
