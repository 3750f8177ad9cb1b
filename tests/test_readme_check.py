"""Checks found by following README.md as a newcomer: what a command prints must name the files it wrote."""

from __future__ import annotations

from pathlib import Path

from cli_helpers import run_cli_fast


def test_simulate_record_steps_names_every_file_it_wrote_with_its_directory(capsys, tmp_path):
    """`simulate --record-steps --out DIR` printed `wrote DIR/requests.parquet, DIR/summary.json, steps.parquet`:
    the steps file without its directory, as if it were in the current one."""
    out = tmp_path / "runs" / "srtf"
    res = run_cli_fast(capsys, "simulate", "-w", "lmsys-like", "-n", "30", "--policy", "srtf", "--record-steps",
                       "--out", out)
    assert res.returncode == 0, res.stderr
    wrote = next(line for line in res.stdout.splitlines() if line.startswith("wrote "))
    named = [Path(p.strip()) for p in wrote.removeprefix("wrote ").split(",")]
    assert named == [out / "requests.parquet", out / "summary.json", out / "steps.parquet"]
    assert all(p.is_file() for p in named)


def test_simulate_without_record_steps_names_no_steps_file(capsys, tmp_path):
    out = tmp_path / "run"
    res = run_cli_fast(capsys, "simulate", "-w", "lmsys-like", "-n", "30", "--policy", "fcfs", "--out", out)
    assert res.returncode == 0, res.stderr
    wrote = next(line for line in res.stdout.splitlines() if line.startswith("wrote "))
    assert wrote == f"wrote {out}/requests.parquet, {out}/summary.json"
    assert not (out / "steps.parquet").exists()


def test_policies_listing_ends_each_description_on_a_whole_sentence(capsys):
    """`ltrsched policies` printed each docstring's first source line: `class` read "... ``bucket`` [tokens]: the
    width every predicted length is" (cut mid-sentence where the docstring wrapped)."""
    res = run_cli_fast(capsys, "policies")
    assert res.returncode == 0, res.stderr
    lines = {line.split(":", 1)[0]: line for line in res.stdout.splitlines()}
    assert lines["class"].endswith("Shortest predicted bucket first; ties by arrival.")
    assert all(line.rstrip().endswith((".", ")")) for line in res.stdout.splitlines()), res.stdout


def test_listings_describe_a_plugin_without_a_docstring_as_such_not_by_its_base_class(capsys, tmp_path):
    """A plugin class without a docstring was listed with the base class's ("Base class of scheduling policies.")."""
    (tmp_path / "nodoc.py").write_text(
        "from ltrsched.policies import Policy, register\n"
        "from ltrsched.routers import Router, register as register_router\n\n"
        "@register\nclass NoDoc(Policy):\n    name = 'rc-nodoc'\n\n    def rank(self, view):\n"
        "        return view.order_by(view.arrival_time)\n\n"
        "@register_router\nclass NoDocRouter(Router):\n    name = 'rc-nodoc-router'\n\n"
        "    def route(self, request, now, replicas):\n        return 0\n")
    for command, name in (("policies", "rc-nodoc:"), ("routers", "rc-nodoc-router ")):
        res = run_cli_fast(capsys, command, "--plugin", tmp_path / "nodoc.py")
        assert res.returncode == 0, res.stderr
        line = next(line for line in res.stdout.splitlines() if line.startswith(name))
        assert line.endswith("(no docstring)") and "Base class" not in line, line


def test_doc_summary_keeps_whole_sentences_that_fit_and_joins_wrapped_lines():
    from ltrsched.doc_summary import doc_summary

    class Wrapped:
        """First sentence, wrapped
        over two lines. A second one that fits. And a third sentence that is far too long to fit beside the
        others in the width given here, so it is left out.

        Another paragraph."""

    assert doc_summary(Wrapped, width=80) == "First sentence, wrapped over two lines. A second one that fits."
    assert doc_summary(Wrapped, width=10) == "First sentence, wrapped over two lines."  # at least one sentence


def _readme_blocks(language: str) -> list[str]:
    import re

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    return re.findall(rf"```{language}\n(.*?)```", readme, re.S)


def test_readme_sweep_file_and_plugins_are_the_example_files_a_newcomer_runs():
    """The README's sweep command named `my-sweep.toml`, a file no checkout has: the example is now
    `examples/sweeps/lmsys-poisson.toml`, and the README's copies of the example files must not drift from them."""
    root = Path(__file__).resolve().parents[1]
    [sweep] = _readme_blocks("toml")
    assert (root / "examples/sweeps/lmsys-poisson.toml").read_text(encoding="utf-8") == sweep
    blocks = _readme_blocks("python")
    for example in ("examples/policies/short_prompt_aging.py", "examples/routers/power_of_two.py"):
        source = (root / example).read_text(encoding="utf-8")
        assert any(block.strip() and block.strip() in source for block in blocks), example


def _saved(policy: str, workload: str, scoring: str):
    import polars as pl

    from ltrsched.plots.runs import SavedRun

    fields = {"workload": workload, "profile": "p", "arrival": "burst", "rate": None, "seed": 0, "scoring": scoring,
              "policy": policy, "replicas": 1, "router": None}
    return SavedRun(Path(f"runs/{policy}-{workload}"), fields, pl.DataFrame({"latency_per_token": [1.0]}))


def test_plot_cdf_of_a_reproduce_directory_puts_its_policies_on_one_panel_row_per_workload():
    """`plot cdf RESULTS` of `reproduce table1` drew 9 panel rows for 2 workloads, most with one line: each policy's
    own predictor (`scoring`) counted as a setting, so LTR and FCFS were never on one panel."""
    from ltrsched.plots.runs import group_for_plot

    runs = [_saved("FCFS", "sharegpt", "none"), _saved("LTR", "sharegpt", "trained-ltr:sharegpt"),
            _saved("PO", "sharegpt", "approx-po:tau=0.51"), _saved("FCFS", "lmsys-like", "none"),
            _saved("LTR", "lmsys-like", "approx-score:tau=0.64")]
    groups = group_for_plot(runs)
    assert [title for title, _ in groups] == ["workload sharegpt", "workload lmsys-like"]
    assert [label for label, _ in groups[0][1]] == ["FCFS scoring none", "LTR scoring trained-ltr:sharegpt",
                                                    "PO scoring approx-po:tau=0.51"]


def test_plot_cdf_keeps_a_row_per_scoring_where_one_policy_ran_with_several():
    """A sweep over `scoring` (one policy, two predictors) still compares the policies per predictor."""
    from ltrsched.plots.runs import group_for_plot

    runs = [_saved("fcfs", "w", "a"), _saved("ltr", "w", "a"), _saved("fcfs", "w", "b"), _saved("ltr", "w", "b")]
    assert [(title, [label for label, _ in lines]) for title, lines in group_for_plot(runs)] == [
        ("scoring a", ["fcfs", "ltr"]), ("scoring b", ["fcfs", "ltr"])]


def _readme_commands() -> list[list[str]]:
    """Every `ltrsched ...` command of README.md's bash blocks (continued lines joined, comments cut), as its words
    after `ltrsched`."""
    import shlex

    commands = []
    for block in _readme_blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            for part in line.split(" #")[0].split("&&"):
                if part.strip().startswith("ltrsched "):
                    commands.append(shlex.split(part)[1:])
    return commands


def _parse(words: list[str]):
    """The command a README line runs and its parameters, parsed as click parses them: an unknown command or option
    raises. (Parsing is resilient, so that no callback checks a file an earlier command writes; resilient parsing
    drops an unknown option silently, so each option word is checked against the command's options here.)"""
    import re

    import click

    from ltrsched.cli import cli

    command, parent, name = cli, click.Context(cli, info_name="ltrsched"), "ltrsched"
    while isinstance(command, click.Group):
        name, words = words[0], words[1:]
        sub = command.get_command(parent, name)
        assert sub is not None, f"no command {name!r}"
        if isinstance(sub, click.Group):
            parent = click.Context(sub, info_name=name, parent=parent)
        command = sub
    options = {o for p in command.params for o in (*p.opts, *p.secondary_opts)} | {"--help"}
    unknown = [w for w in words if w.startswith("-") and not re.fullmatch(r"-[\d.e+-]+", w)
               and w.split("=")[0] not in options]
    assert not unknown, f"ltrsched {name}: no option {', '.join(unknown)}"
    return command, command.make_context(name, list(words), parent=parent, resilient_parsing=True).params


def test_readme_commands_parse_and_read_files_a_checkout_has_or_an_earlier_command_wrote():
    """Three README commands ran `ltrsched sweep my-sweep.toml`, a file no checkout has (a newcomer's first sweep
    stopped at 'does not exist'): each command's options must exist, and each input file it names must be in the
    repository, written by an earlier README command, or a file the text says is the reader's own."""
    root = Path(__file__).resolve().parents[1]
    suffixes = {".toml", ".json", ".jsonl", ".parquet", ".csv", ".py", ".txt"}
    written: set[str] = set()
    commands = _readme_commands()
    assert len(commands) > 40  # (the blocks were found)
    for words in commands:
        command, params = _parse(words)
        for key in ("sweep_file", "plugin", "workload", "data", "labels", "prompts"):
            values = params.get(key)
            for value in values if isinstance(values, tuple) else [values]:
                path = str(value) if value is not None else ""
                if Path(path).suffix not in suffixes or path.startswith("../shared/") or path == "my-prompts.jsonl":
                    continue  # (a built-in name; the trace kept beside the checkout; "Your own prompts instead")
                assert (root / path).exists() or path in written, f"ltrsched {' '.join(words)}: no {path}"
        written |= {str(v) for k, v in params.items() if k in ("out", "output") and v is not None}


def test_markdown_links_in_the_repository_point_at_files_it_has():
    """docs/reproduction/sections/*.md linked their figures as `figures/x.png`, beside the section file (no such
    directory: they are in docs/reproduction/figures); every relative link of a committed .md file must resolve."""
    import re

    root = Path(__file__).resolve().parents[1]
    broken = []
    for md in [*root.glob("*.md"), *root.glob("docs/**/*.md")]:
        for target in re.findall(r"\]\(([^)\s#]+)", md.read_text(encoding="utf-8")):
            if "://" not in target and not (md.parent / target).exists():
                broken.append(f"{md.relative_to(root)}: {target}")
    assert not broken, broken


def test_reproduce_section_files_link_their_figures_from_where_they_are_kept(tmp_path):
    """A section kept in OUT/sections/ links its figure as ../figures/x.png; REPRODUCTION.md, in OUT, as figures/x.png
    (also for a section an earlier version kept, which linked figures/x.png)."""
    from ltrsched.experiments.report import SECTIONS_DIR, write_report
    from ltrsched.experiments.tables import Section

    figure = tmp_path / "figures" / "fig3_latency.png"
    figure.parent.mkdir()
    figure.write_bytes(b"png")
    (tmp_path / SECTIONS_DIR).mkdir()
    (tmp_path / SECTIONS_DIR / "table1.md").write_text(  # (as an earlier version kept it)
        '<!-- ltrsched-section {"command": "c0", "date": "d", "passed": 0, "checks": 0} -->\n## Table 1\n\n'
        "![table1](figures/table1.png)\n")
    report = write_report([("fig3", Section("fig3", "Figure 3", figures=[figure]))], tmp_path, "c1", 1.0,
                          ["table1", "fig3"]).read_text()
    section = (tmp_path / SECTIONS_DIR / "fig3.md").read_text()
    assert "![fig3_latency](../figures/fig3_latency.png)" in section
    assert "![fig3_latency](figures/fig3_latency.png)" in report and "![table1](figures/table1.png)" in report
    assert "../" not in report


def test_a_run_table_title_names_only_what_the_run_has():
    """`replay`'s table (an engine run: no profile) was titled "sharegpt | srtf | ", an empty last field."""
    import polars as pl

    from ltrsched.results import RunResult

    summary = {"num_requests": 1, "makespan": 1.0, "throughput_rps": 1.0, "throughput_tok_s": 1.0}
    title = lambda meta: RunResult(pl.DataFrame(), summary, meta=meta).table().splitlines()[0]  # noqa: E731
    assert title({"workload": "sharegpt", "policy": "srtf"}) == "sharegpt | srtf"
    assert title({"workload": "sharegpt", "policy": "srtf", "profile": "a100-llama3-8b"}) == \
        "sharegpt | srtf | a100-llama3-8b"


def test_listings_align_every_summary_and_show_docstring_literals_as_the_help_does(capsys, tmp_path):
    """`ltrsched policies` printed ``quantum``-style reStructuredText marks, and a spec longer than its 48-character
    column (mlfq's, class's) pushed its own summary out of line. One line per policy, summaries in one column."""
    res = run_cli_fast(capsys, "policies")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert "``" not in res.stdout and "`quantum` [s] at the top level" in res.stdout, res.stdout
    mlfq = next(line for line in lines if line.startswith("mlfq:"))
    column = mlfq.index("Multi-level feedback queue")
    assert column > 48 and all(line[column - 1] == " " and line[column] != " " for line in lines), res.stdout
    (tmp_path / "long.py").write_text(  # a plugin's very long spec overflows alone
        "from ltrsched.policies import Policy, register\n\n@register\nclass Long(Policy):\n"
        "    '''Long.'''\n    name = 'long'\n\n    def __init__(self, " + ", ".join(f"p{i}=0" for i in range(40))
        + "):\n        pass\n\n    def rank(self, view):\n        return view.order_by(view.arrival_time)\n")
    res = run_cli_fast(capsys, "policies", "--plugin", tmp_path / "long.py")
    assert next(line for line in res.stdout.splitlines() if line.startswith("mlfq:")).index("Multi-level") == column


def test_readme_gpu_install_with_the_predictors_adds_the_predict_extras_transformers_alone():
    """`.[engine]` (vLLM's torch 2.14.0) and `.[predict]` (torch 2.13.0) cannot be installed together; README's GPU
    line with the predictors adds `predict`'s transformers requirement alone, so it must name that extra's range and
    `predict` must need nothing else but its torch pin."""
    import tomllib

    root = Path(__file__).resolve().parent.parent
    extras = tomllib.loads((root / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    torch_pins = [r for r in extras["predict"] if r.startswith("torch")]
    others = [r for r in extras["predict"] if not r.startswith("torch")]
    assert len(torch_pins) == 1 and [r.split(">")[0].split("=")[0] for r in others] == ["transformers"], extras
    command = f"pip install -e '.[engine]' '{others[0]}'"
    assert command in (root / "README.md").read_text()
    assert command in (root / "pyproject.toml").read_text()
    assert not [r for r in extras["engine"] if r.startswith("torch")], extras["engine"]


def test_capacity_quick_help_gives_the_time_the_readme_measured(capsys):
    """`capacity --help` said --quick takes "~1.5 min on 2 cores"; README's capacity section measured the same
    command (5 policies, --quick) at 20-75 s, and following it took 29 s wall (24.5 s of CPU) on one core: the help
    must give README's measured range."""
    import re

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    [measured] = re.findall(r"The command above took (\d+-\d+ s) on the\s+2-core machine", readme)
    res = run_cli_fast(capsys, "capacity", "--help")
    assert res.returncode == 0, res.stderr
    help_text = " ".join(res.stdout.split())
    [quick] = re.findall(r" --quick ([A-Z].*?) -o, --out", help_text)  # (the option's own line, not -n's mention)
    assert f"5 policies: {measured} on 2 cores" in quick, quick


def _readme_text() -> str:
    return " ".join((Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8").split())


def _simulated_means(capsys, tmp_path, *words) -> dict:
    """`ltrsched simulate WORDS --out DIR`'s summary.json (the README's own command, plugin paths from the checkout)."""
    import json

    root = Path(__file__).resolve().parents[1]
    words = [str(root / w) if w.startswith("examples/") else w for w in words]
    out = tmp_path / f"run{len(list(tmp_path.iterdir()))}"
    res = run_cli_fast(capsys, "simulate", *words, "--no-progress", "--out", out)
    assert res.returncode == 0, res.stderr
    return json.loads((out / "summary.json").read_text())["summary"]


def test_readme_plugin_example_numbers_are_what_its_command_prints_in_the_simulator(capsys, tmp_path):
    """The README quotes the plug-in policy's results on the 2,000-request burst and on the 300-request vllm-v1 run
    beside the emulated engine; each number must be what the command it names prints now (the simulator is
    deterministic: a change that moves them must change the README with it)."""
    import re

    text = _readme_text()
    pattern = (r"the plug-in alone gives a mean latency per token of ([\d.]+) s and a mean max waiting time of "
               r"([\d.]+) s \(FCFS: ([\d.]+) s, ([\d.]+) s\); with `starve=200` the waiting drops to ([\d.]+) s for "
               r"a mean of ([\d.]+) s")
    quoted = re.search(pattern, text)
    assert quoted, "README's plug-in example no longer quotes its numbers as this test reads them"
    alone_lat, alone_wait, fcfs_lat, fcfs_wait, starve_wait, starve_lat = quoted.groups()
    command = ("simulate -n 2000 --plugin examples/policies/short_prompt_aging.py "
               "--policy short-prompt:age=0.5,starve=200")
    assert f"ltrsched {command}" in text
    words = command.split()[1:]
    for policy, (lat, wait) in {"short-prompt:age=0.5,starve=200": (starve_lat, starve_wait),
                                "short-prompt:age=0.5": (alone_lat, alone_wait),
                                "fcfs": (fcfs_lat, fcfs_wait)}.items():
        summary = _simulated_means(capsys, tmp_path, *words[:-1], policy)
        got = (summary["latency_per_token_mean"], summary["max_waiting_time_mean"])
        assert (f"{got[0]:.3f}", f"{got[1]:.1f}") == (lat, wait), (policy, got)
    [v1] = re.findall(r"ltrsched (simulate -n 300 --plugin \S+ --policy \S+ --semantics vllm-v1) "
                      r"# both: mean latency per token ([\d.]+) s/token", text)
    summary = _simulated_means(capsys, tmp_path, *v1[0].split()[1:])
    assert f"{summary['latency_per_token_mean']:.4f}" == v1[1], summary["latency_per_token_mean"]


# ---------------------------------------------------------------- today's refusals and warnings, quoted in the README
def _printed_line(text: str, start: str) -> str:
    """The one line of ``text`` that starts with ``start``."""
    [line] = [line for line in text.splitlines() if line.startswith(start)]
    return line


def test_readme_quotes_simulates_refusal_of_a_router_without_replicas(capsys):
    """README's Clusters section quotes the refusal of `--router` without `--replicas` (it ran a 1-replica cluster)."""
    res = run_cli_fast(capsys, "simulate", "-n", "100", "--router", "round-robin")
    assert res.returncode == 2
    assert f"`{_printed_line(res.stderr, 'error: ')}` (exit code 2)" in _readme_text()


def test_readme_quotes_pos_warning_at_an_unreachable_tau(capsys, tmp_path):
    """README's Predictors section quotes `simulate -P po` on 30 requests of 200 output tokens each."""
    (tmp_path / "w.csv").write_text("arrival_time,prompt_tokens,output_tokens\n"
                                    + "".join(f"{i * 0.1},100,200\n" for i in range(30)))
    res = run_cli_fast(capsys, "simulate", "-w", tmp_path / "w.csv", "--arrival", "replay", "-P", "po")
    assert res.returncode == 0, res.stderr
    line = _printed_line(res.stderr, "warning: po:tau=0.51")
    quoted = "warning: po:tau=0.51: tau 0.51 cannot be reached: all 30 output lengths are equal (200 tokens), "
    assert line.startswith(quoted) and f"`{quoted}...`" in _readme_text(), line


def test_readme_quotes_the_kv_fit_refusal_naming_pos_extra_tokens(capsys, tmp_path):
    """README's Real engine section quotes validate's refusal of one request of 100 + 61 tokens on 11 KV blocks (the
    context they bound, 160 tokens, named)."""
    (tmp_path / "w.csv").write_text("prompt_tokens,output_tokens\n100,61\n")
    res = run_cli_fast(capsys, "validate", "-w", "w.csv", "--emulate", "a100-llama3-8b", "--num-gpu-blocks", "11",
                       "--policies", "fcfs;po;srtf", "--out", tmp_path / "v", cwd=tmp_path)
    assert res.returncode == 2
    text = _readme_text()
    assert "`validate -w w.csv --emulate a100-llama3-8b --num-gpu-blocks 11 --policies 'fcfs;po;srtf'`" in text
    assert f"printed `{_printed_line(res.stderr, 'error: ')}`" in text


def test_readme_quotes_the_rank_routers_warning_on_one_score_for_all(capsys, tmp_path):
    """README's Clusters section quotes `--replicas 2 --router rank` on 40 requests scored 0.5 each."""
    (tmp_path / "w.csv").write_text("arrival_time,prompt_tokens,output_tokens,score\n"
                                    + "".join(f"{i * 0.05},100,{50 + i},0.5\n" for i in range(40)))
    res = run_cli_fast(capsys, "simulate", "-w", tmp_path / "w.csv", "--arrival", "replay", "--replicas", "2",
                       "--router", "rank")
    assert res.returncode == 0, res.stderr
    line = _printed_line(res.stderr, "warning: router 'rank'")
    quoted = ("warning: router 'rank': all 40 scored request(s) have the same score (0.5); routed by it, the router "
              "is least-outstanding: ")
    assert line.startswith(quoted) and f"`{quoted}...`" in _readme_text(), line


# ---------------------------------------------------------------- commands in the prose and in VALIDATION.md
def _fenced_commands(name: str) -> list[list[str]]:
    """Every `ltrsched ...` line of ``name``'s fenced code blocks (any language; continued lines joined, comments cut,
    a bracketed option such as `[--preemption recompute]` kept as two commands: without it and with it)."""
    import re
    import shlex

    text = (Path(__file__).resolve().parents[1] / name).read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            for part in line.split(" #")[0].split("&&"):
                part = part.strip()
                if part.startswith("ltrsched "):
                    without = re.sub(r"\s*\[[^]]*\]", "", part)
                    commands.append(shlex.split(without)[1:])
                    if without != part:
                        commands.append(shlex.split(part.replace("[", "").replace("]", ""))[1:])
    return commands


def _inline_commands(name: str) -> list[list[str]]:
    """The `ltrsched CMD ...` or `CMD --option ...` spans of ``name``'s prose whose first word is a command (`...`
    and brackets dropped)."""
    import re
    import shlex

    import click

    from ltrsched.cli import cli

    names = set(cli.list_commands(click.Context(cli)))
    text = (Path(__file__).resolve().parents[1] / name).read_text(encoding="utf-8")
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    commands = []
    for span in re.findall(r"`([^`]+)`", text):
        words = " ".join(span.split()).removeprefix("ltrsched ").replace("...", "")
        if words.split(" ")[0] in names and " -" in words:
            commands.append(shlex.split(words.replace("[", "").replace("]", "")))
    return commands


def test_readme_command_check_refuses_an_option_the_cli_does_not_have():
    """The check of the README's commands parsed them resiliently, and click's resilient parsing drops an unknown
    option without a word: a README line with an option the CLI no longer has passed it."""
    import pytest

    with pytest.raises(AssertionError, match="no option --no-such-option"):
        _parse(["simulate", "-n", "5", "--no-such-option", "3"])
    with pytest.raises(AssertionError, match="no option --max-resident-seq"):
        _parse(["validate", "--max-resident-seq=4"])
    assert _parse(["simulate", "-n", "5", "--policy=fcfs", "--no-chunked-prefill"])[1]["num_requests"] == 5


def test_commands_in_the_prose_and_in_validation_md_name_options_their_command_has():
    """Besides README's bash blocks, commands are quoted in its prose (`capacity --quick -p fcfs --slo ...`) and in
    VALIDATION.md's blocks and prose: each one's options must be its command's."""
    commands = [*_inline_commands("README.md"), *_fenced_commands("VALIDATION.md"), *_inline_commands("VALIDATION.md")]
    assert len(commands) > 50  # (the spans were found)
    for words in commands:
        _parse(words)


def test_simulate_commands_of_readme_and_validation_md_run(capsys, tmp_path, monkeypatch):
    """VALIDATION.md's `simulate -n 1000 --policy mlfq --semantics vllm-v1 [--max-resident-seqs 1024]` is refused since
    vllm-v1 semantics require a token budget of at least the resident cap (768 < 1024): every `simulate` command the
    two files show (a bracketed option with and without it) must run, here on 20 of its requests. Input files that
    an earlier command writes or that lie beside the checkout are left to the other checks."""
    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(tmp_path)
    ran = 0
    for words in [*_fenced_commands("README.md"), *_fenced_commands("VALIDATION.md")]:
        if words[0] != "simulate":
            continue
        command, params = _parse(words)
        workload = str(params.get("workload") or "")
        if Path(workload).suffix and not (root / workload).exists():
            continue
        words = [str(root / w) if (root / w).is_file() else w for w in words]
        for option in ("-n", "--num-requests"):
            if option in words:
                words[words.index(option) + 1] = "20"
        if "-n" not in words and "--num-requests" not in words:
            words += ["-n", "20"]
        res = run_cli_fast(capsys, *words, "--no-progress")
        assert res.returncode == 0, f"ltrsched {' '.join(words)}: {res.stderr}"
        ran += 1
    assert ran >= 10, ran


def test_readme_sim_config_calls_construct_as_written():
    """README named the vLLM-V1 semantics `SimConfig(semantics="vllm-v1")`, which refuses to construct (its
    preemption defaults to swap in Python, which vLLM V1 has not; the CLI picks recompute itself): every
    `SimConfig(...)` the README writes must build."""
    import re

    from ltrsched.sim import SimConfig

    calls = re.findall(r"`(SimConfig\([^`]*\))`", _readme_text())
    assert calls
    for call in calls:
        assert isinstance(eval(call, {"SimConfig": SimConfig}), SimConfig), call


def test_readme_names_every_experiment_reproduce_runs():
    """README named `reproduce table1`, `table3`, `all` and `real-model` only: a newcomer after Figure 3 or Table 2
    alone had to find `fig3` and `table2` in `--help`. Every target `reproduce` takes must be in the README, as code."""
    import click

    from ltrsched.cli import cli

    reproduce = cli.get_command(click.Context(cli), "reproduce")
    targets = next(p for p in reproduce.params if isinstance(p, click.Argument)).type.choices
    assert len(targets) > 4  # (the choices were found)
    text = _readme_text()
    missing = [t for t in targets if f"reproduce {t}" not in text and f"`{t}`" not in text]
    assert not missing, f"README never names reproduce's {missing}"


def test_top_level_help_says_what_workloads_and_real_model_results_take(capsys):
    """`ltrsched --help` said `workloads` lists built-in workloads only (README: `ltrsched workloads FILE ...` prints a
    file's statistics) and `real-model-results` gathers "a validate run" (it takes several: `runs/real runs/real2`)."""
    res = run_cli_fast(capsys, "--help")
    assert res.returncode == 0, res.stderr
    lines: dict[str, str] = {}
    for line in res.stdout.split("Commands:")[1].splitlines():
        if line.startswith("   "):  # (a wrapped description goes on)
            lines[name] += " " + line.strip()
        elif line.strip():
            name = line.split()[0]
            lines[name] = line.strip()
    assert "files" in lines["workloads"], lines["workloads"]
    assert "runs" in lines["real-model-results"], lines["real-model-results"]
