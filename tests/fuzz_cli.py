"""A seeded hostile-input fuzz of the commands' options, in this process (:func:`cli_helpers.run_cli_captured`).

Each case is one command's valid base command line with ONE option (or argument) changed to a hostile value: empty,
blank, NaN/inf/-0/1e308/-1e308/2**63, huge and negative integers, numbers as text that ``int()``/``float()`` read
otherwise than written (1e400, 0x10, Arabic-Indic and full-width digits: :data:`NUMBER_TEXTS`), a value of 5,000
characters, an existing file whose name holds a line break, unicode, control characters, a line break or ESC,
a directory where a file is wanted and a file where a directory is, an output that cannot be written (under /proc:
the suite runs as root, where a read-only mode bit writes anyway), an output equal to an input, the option given
twice, comma lists with empty or repeated members, bad policy and router specs, and workload files of other sources
where a command reads one (:data:`WORKLOAD_FILES`: other models' lengths, other columns, other scripts, broken
files), and profile files where a command reads one (:data:`PROFILES`: NaN, 1e400, negative and zero terms, missing
keys, wrong types, another model, empty, binary, a FIFO, a loop of links, 65 MB). A case passes when the command
exits 0 or 2, with one ``error:`` line on stderr for 2 (the last, after nothing but the warnings explaining it) and
no traceback for either, within its time limit, leaving every input file as it was. The engine never starts: where
a command would start it (after ``start_engine``'s own checks of its options) or load a served model, the case
stops, and passes (:data:`ENGINE` is its outcome).

Run once, outside the suite (each case in a fresh directory; a summary and every failure printed)::

    PYTHONPATH=$PWD:$PWD/tests python tests/fuzz_cli.py --cases 1000 --seed 1

``tests/test_fuzz_cli.py`` keeps a fast subset in the suite.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import random
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

#: The outcome of a case that reached the point where its command starts the engine (or loads a served model).
ENGINE = "engine"

#: How the lines begin that may go ahead of an error's line: the warnings that explain it (a file's first turns the
#: paper's rules left out, ahead of "no eligible requests": :func:`ltrsched.notices.explain_error`).
NOTICE_PREFIXES = ("warning: ", "note: ")

#: An output path no write reaches (the root user writes through a file's read-only mode bits; /proc refuses).
UNWRITABLE_DIR = "/proc/ltrsched-fuzz"


class ReachedEngine(BaseException):
    """Raised where a command would start the engine: the case stops there."""


class Hang(BaseException):
    """Raised by the alarm when a case runs past its time limit."""


#: Numbers as text that Python's own ``int()``/``float()`` or a careless parser read otherwise than written: beyond a
#: float (1e400: inf), below one (1e-400: 0), hexadecimal and binary, digits of other scripts (Arabic-Indic three,
#: full-width five), a Unicode minus, underscores, signs and spaces around, a trailing dot, "Infinity".
NUMBER_TEXTS = ["1e400", "-1e400", "1e-400", "0x10", "0b1", "٣", "５", "\u22121", "1_000", "+5", " 5 ", "5.", ".5",
                "Infinity", "-0.0"]

#: Hostile values for any option that takes a value. ``{IN}`` is the inputs directory; ``{INPUT}`` the command's own
#: input file (the output-equals-input case).
GENERIC = ["", " ", "\t", "nan", "inf", "-inf", "-0", "1e308", "-1e308", str(2**63), str(-2**63 - 1), "-1", "0",
           "99999999999999999999", "-99999999999999999999", "中文😀", "a\x1bb", "a\nb", "a\rb", "{IN}/adir",
           "{IN}/afile.txt", "{IN}/afile.txt/x", f"{UNWRITABLE_DIR}/x", "{INPUT}", "a,,b", ",", "x,x", *NUMBER_TEXTS,
           "x" * 5000, "{IN}/line\nbreak.csv"]

POLICY_SPECS = ["ltr:tau=", "ltr:tau=nan", "ltr:tau=inf", "ltr:tau=-0", "ltr:tau=1e308", "mlfq:levels=0",
                "mlfq:quantum=0", "mlfq:threshold=nan", "fcfs:x=1", "fcfs:starve=-1", f"fcfs:starve={2**63}",
                "ltr:", ":", "ltr:tau=0.5,tau=0.6", "ltr:tau=0.5,", "ltr:=1", "fcfs;fcfs", "fcfs,,fcfs", "LTR",
                "po:tokens=0", "oracle:tau=2", "class:bucket=0", "srtf:quantum=0", "ltr:tau=0.5:seed=1"]

ROUTER_SPECS = ["least-kv:by=", "least-kv:by=nan", "random:seed=nan", f"random:seed={2**63}", "round-robin:x=1",
                "least-kv:", ":", "rank:tau=", "rank:tau=nan", "least-work:tau=-0", "random:seed=1,seed=1",
                "least-outstanding,,", "nope"]

#: Comma (or ';') lists with empty or repeated members, for the options that take one.
LISTS = {"--rates": ["1,,2", "2,2", "1,nan", "1, 2", "-1,2", "1,1e308", "1;2"],
         "--policies": ["fcfs;;srtf", "fcfs;fcfs", "fcfs,fcfs", ";", "fcfs,srtf,", "ltr:tau=0.5,seed=1;ltr:tau=0.5"],
         "--splits": ["eval,,eval", "eval,eval", "eval,train,eval", "eval;train"]}

SLO_SPECS = ["ttft_p90=", "ttft_p90=nan", "ttft_p90=-0", "=2", "ttft_p90", "nope=2", "ttft_p90=2=3",
             f"ttft_p90={2**63}", "ttft_p90=1e308"]


def _csv(header: str, rows) -> str:
    return header + "\n" + "".join(",".join(map(str, row)) + "\n" for row in rows)


def _jsonl(records) -> str:
    import json

    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


_WORDS = ["こんにちは世界", "Привет, как дела?", "🙂🙃😀 emoji 🤖", "مرحبا كيف حالك", "请写一首关于春天的诗", "Écris un poème"]
#: Workload (and prompt) files of other sources than ShareGPT, written under ``{IN}/wl/`` by :func:`make_inputs`:
#: name -> its text (bytes for a binary file, a callable writing it for a parquet). Other models' lengths (outputs
#: of 32k-128k tokens, a cap with many rows at it, all equal, 1 token), prompts longer than a context, lengths that
#: are no lengths, missing and extra columns, non-English and emoji text, empty and 1 MB prompts, duplicate ids,
#: unsorted / negative / NaN / 1e300 arrivals and date-times in two formats, one request and none, broken files.
WORKLOAD_FILES = {
    "long128k.csv": _csv("prompt_tokens,output_tokens", [(20 + i, (32768, 65536, 131072)[i % 3]) for i in range(9)]),
    "cap4096.csv": _csv("prompt_tokens,output_tokens", [(30 + i, 4096 if i % 4 else 100 + i) for i in range(12)]),
    "equal.csv": _csv("prompt_tokens,output_tokens", [(10 + i, 64) for i in range(8)]),
    "one_token.csv": _csv("prompt_tokens,output_tokens", [(10 + i, 1) for i in range(8)]),
    "long_prompt.csv": _csv("prompt_tokens,output_tokens", [(20000 if i % 2 else 50, 8) for i in range(8)]),
    "float_lengths.csv": _csv("prompt_tokens,output_tokens", [(10.5, 20.0)] * 8),
    "negative_lengths.csv": _csv("prompt_tokens,output_tokens", [(10, -5)] * 8),
    "nan_lengths.csv": _csv("prompt_tokens,output_tokens", [(10, "nan")] * 8),
    "inf_lengths.csv": _csv("prompt_tokens,output_tokens", [(10, "inf")] * 8),
    "int64_lengths.csv": _csv("prompt_tokens,output_tokens", [(10, 2**63)] * 8),
    "no_output.csv": _csv("prompt_tokens", [(10,)] * 8),
    "extra_columns.csv": _csv("prompt_tokens,output_tokens,model,bar baz", [(10 + i, 5 + i, "m", 1.5) for i in range(8)]),
    "duplicate_ids.csv": _csv("request_id,prompt_tokens,output_tokens", [(i // 2, 10, 5 + i) for i in range(8)]),
    "unsorted_arrivals.csv": _csv("arrival_time,prompt_tokens,output_tokens", [(8 - i, 10, 5 + i) for i in range(8)]),
    "negative_arrivals.csv": _csv("arrival_time,prompt_tokens,output_tokens", [(i - 3, 10, 5 + i) for i in range(8)]),
    "huge_arrivals.csv": _csv("arrival_time,prompt_tokens,output_tokens", [(1e300 if i == 0 else i, 10, 5) for i in range(8)]),
    "zero_arrivals.csv": _csv("arrival_time,prompt_tokens,output_tokens", [(0.0, 10, 5 + i) for i in range(8)]),
    "mixed_dates.csv": _csv("timestamp,prompt_tokens,output_tokens",
                            [("2024-01-01 00:00:0%d" % i if i < 7 else "01/02/2024 00:00:01", 10, 5) for i in range(8)]),
    "one_request.csv": _csv("prompt_tokens,output_tokens", [(10, 20)]),
    "header_only.csv": _csv("prompt_tokens,output_tokens", []),
    "empty.csv": "",
    "spaced ü 中.csv": _csv("prompt_tokens,output_tokens", [(10 + i, 5 + i) for i in range(8)]),
    "intl.jsonl": _jsonl({"prompt": _WORDS[i % 6] * (1 + i), "output_tokens": 3 + 7 * i} for i in range(8)),
    "empty_prompt.jsonl": _jsonl({"prompt": "" if i == 3 else f"prompt {i}", "output_tokens": 5} for i in range(8)),
    "mb_prompt.jsonl": _jsonl({"prompt": "word " * 200_000 if i == 0 else f"prompt {i}", "output_tokens": 5 + i}
                              for i in range(8)),
    "nan_arrival.jsonl": "".join('{"prompt": "p %d", "output_tokens": 5, "arrival_time": %s}\n' % (i, "NaN" if i == 2 else i)
                                 for i in range(8)),
    "list_content.jsonl": _jsonl({"messages": [{"role": "user", "content": [{"type": "text", "text": f"hi {i}"}]},
                                               {"role": "assistant", "content": "ok " * 9}]} for i in range(8)),
    "utf16.jsonl": _jsonl({"prompt": f"p {i}", "output_tokens": 5} for i in range(8)).encode("utf-16"),
    "latin1.jsonl": '{"prompt": "caf\xe9", "output_tokens": 5}\n'.encode("latin-1"),
    "truncated.parquet": lambda path: _parquet(path, truncated=True),
    "nan_lengths.parquet": lambda path: _parquet(path, output_tokens=[5.0, float("nan")] * 4),
    "uint64_lengths.parquet": lambda path: _parquet(path, output_tokens=[5, 2**64 - 1] * 4, dtype="UInt64"),
}


def _parquet(path: Path, output_tokens=None, dtype=None, truncated: bool = False) -> None:
    import polars as pl

    output_tokens = output_tokens or [5 + i for i in range(8)]
    df = pl.DataFrame({"prompt_tokens": [10] * len(output_tokens),
                       "output_tokens": pl.Series(output_tokens, dtype=getattr(pl, dtype) if dtype else None)})
    df.write_parquet(path)
    if truncated:
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


#: The hostile workload files as option values.
WORKLOADS = [f"{{IN}}/wl/{name}" for name in WORKLOAD_FILES]


def _profile_text(change=None, drop=None, text=None, base="cpu-llama-tiny") -> str:
    """The built-in profile ``base``'s file text with its dict changed by ``change`` (key -> value; a dotted key
    reaches into a table or ``provenance.engine``), the key ``drop`` left out, or ``text`` replacing a value's JSON
    text (``(old, new)``: a literal json cannot write, NaN or 1e400)."""
    import json

    from ltrsched.sim.profiles import load_profile, profile_to_dict

    data = profile_to_dict(load_profile(base))
    for key, value in (change or {}).items():
        *path, last = key.split(".")
        node = data
        for part in path:
            node = node[part]
        node[last] = value
    if drop:
        data.pop(drop)
    out = json.dumps(data)
    if text:
        assert text[0] in out, text
        out = out.replace(*text, 1)
    return out


#: Profile files (``--profile``, ``--emulate``) written under ``{IN}/prof/`` by :func:`make_inputs`: name -> a
#: callable giving its text (bytes for a binary one), or None for the special ones :func:`make_inputs` makes beside
#: the inputs (``{IN}/../special/``: a named pipe, a link to itself, a 65 MB sparse file): NaN and 1e400 literals,
#: negative and zero coefficients, a step of no time, missing keys, wrong types, another model and TP, another block
#: size, a context of 1 token, empty, blank, binary, TOML and nested files.
PROFILE_FILES = {
    "nan.json": lambda: _profile_text(text=('"overhead_s_per_step": 0.', '"overhead_s_per_step": NaN, "x": 0.')),
    "nan_only.json": lambda: _profile_text(text=('"decode_attention_s_per_kv_token": ',
                                                 '"decode_attention_s_per_kv_token": NaN, "y": ')),
    "inf.json": lambda: _profile_text(text=('"overhead_s_per_seq": 0.0', '"overhead_s_per_seq": 1e400')),
    "negative.json": lambda: _profile_text({"prefill_attention_s_per_pair": -1e-9}),
    "zero_steps.json": lambda: _profile_text({"non_attention.non_attention_s": [0.0] * 18,
                                              "sampling.sampling_s": [0.0] * 7, "overhead_s_per_step": 0.0,
                                              "overhead_s_per_seq": 0.0}),
    "missing_key.json": lambda: _profile_text(drop="decode_attention_s_per_kv_token"),
    "string_number.json": lambda: _profile_text({"max_model_len": "8192"}),
    "bool_number.json": lambda: _profile_text({"tensor_parallel": True}),
    "list_table.json": lambda: _profile_text({"sampling": [1, 2]}),
    "other_model.json": lambda: _profile_text(base="a100-llama3-70b-tp8"),  # (beside the engine's llama-tiny)
    "other_tp.json": lambda: _profile_text({"tensor_parallel": 8}),  # (8 does not divide its 4 heads)
    "other_block_size.json": lambda: _profile_text({"provenance.engine.block_size": 7}),
    "no_block_size.json": lambda: _profile_text({"provenance.engine.block_size": "x"}),
    "context_1.json": lambda: _profile_text({"max_model_len": 1}),
    "empty.json": lambda: "",
    "blank.json": lambda: " \n\t\n",
    "binary.json": lambda: bytes(range(256)) * 4,
    "utf16.json": lambda: _profile_text().encode("utf-16"),
    "toml.toml": lambda: 'format = "ltrsched-step-time-profile"\nformat_version = 1\n',
    "list.json": lambda: "[]",
    "nested.json": lambda: "[" * 100_000,
    "adir.json": None,
}
#: The special profile paths (:func:`make_inputs` makes them in ``{IN}/../special/``, outside the inputs whose files
#: a case's snapshot reads): a named pipe (must not hang), a symbolic link to itself, a 65 MB sparse file.
SPECIAL_PROFILES = ["{IN}/../special/fifo.json", "{IN}/../special/loop.json", "{IN}/../special/sparse.json"]
PROFILES = [f"{{IN}}/prof/{name}" for name in PROFILE_FILES] + SPECIAL_PROFILES + ["/dev/zero", "/dev/null"]


@dataclass(frozen=True)
class Base:
    """A command line that runs (or reaches the engine): ``args`` its positional part (the command and its arguments,
    then options), ``options`` the options it gives (option -> value; None: a flag), ``specs`` which options take a
    policy / router / SLO spec, ``inputs`` the input file an output may be pointed at."""

    args: tuple[str, ...]
    options: dict[str, str | None]
    input_file: str = "{IN}/w.csv"
    specs: dict[str, list[str]] = field(default_factory=dict)

    def values(self, option: str) -> list[str]:
        """The hostile values tried for ``option``."""
        return GENERIC + self.specs.get(option, []) + LISTS.get(option, [])


BASES: dict[str, Base] = {
    # (--replicas 2: a --router is refused without replicas above 1, and the router specs would stop there)
    "simulate": Base(("simulate",), {"-w": "{IN}/w.csv", "-n": "5", "-o": "out/run", "--record-steps": None,
                                     "--replicas": "2"},
                     specs={"-P": POLICY_SPECS, "--router": ROUTER_SPECS, "-w": WORKLOADS, "--profile": PROFILES}),
    "sweep": Base(("sweep", "{IN}/s.toml"), {"-o": "out/sw", "-j": "1"}, input_file="{IN}/s.toml"),
    "capacity": Base(("capacity",), {"--slo": "ttft_p90=2", "-w": "{IN}/w.csv", "-n": "5", "--seeds": "1",
                                     "-p": "fcfs", "-j": "1", "--max-rate": "8", "-o": "out/cap", "--replicas": "2"},
                     specs={"-p": POLICY_SPECS, "--router": ROUTER_SPECS, "--slo": SLO_SPECS, "-w": WORKLOADS,
                            "--profile": PROFILES}),
    "plot cdf": Base(("plot", "cdf", "{IN}/run"), {"-o": "out/c.png"}, input_file="{IN}/run/summary.json"),
    "plot trace": Base(("plot", "trace", "{IN}/run"), {"-o": "out/t.json"}, input_file="{IN}/run/summary.json"),
    "profile": Base(("profile",), {"-m": "llama-tiny", "--quick": None, "-o": "out/p.json", "--kv-cache-gib": "1"},
                    input_file="{IN}/profile.json", specs={"--emulate": PROFILES}),
    "validate": Base(("validate",), {"-w": "{IN}/w.csv", "-n": "3", "-m": "llama-tiny", "-o": "out/val",
                                     "--kv-cache-gib": "1"},
                     specs={"--policies": POLICY_SPECS, "-w": WORKLOADS, "--profile": PROFILES,
                            "--emulate": PROFILES}),
    "replay": Base(("replay",), {"-w": "{IN}/w.csv", "-n": "3", "-m": "llama-tiny", "-o": "out/rp",
                                 "--kv-cache-gib": "1"},
                   specs={"-P": POLICY_SPECS, "-w": WORKLOADS, "--emulate": PROFILES}),
    "label": Base(("label",), {"-m": "smollm2", "--limit": "2", "-o": "out/l.parquet"},
                  input_file="{IN}/prompts.json", specs={"--prompts": WORKLOADS}),
    "predict": Base(("predict",), {"-m": "{IN}/ckpt", "-w": "{IN}/prompts.json", "-o": "out/p.parquet"},
                    input_file="{IN}/prompts.json", specs={"-w": WORKLOADS}),
    "evaluate": Base(("evaluate",), {"-m": "{IN}/ckpt", "--data": "{IN}/prompts.json", "--split": "all",
                                     "--plot": "out/e.png"}, input_file="{IN}/prompts.json",
                     specs={"--data": WORKLOADS}),
    # (an argument for the ARG cases to replace: without one they replaced the command's name, `ltrsched VALUE`)
    "profiles": Base(("profiles", "cpu-llama-tiny"), {"--steps": None}, specs={"ARG": PROFILES}),
    "workloads": Base(("workloads",), {}),
    "policies": Base(("policies",), {}),
    "routers": Base(("routers",), {}),
    # (a sweep whose file's one key is hostile: the options are the file's keys, the values TOML literals)
    "sweep-file": Base(("sweep", "fuzz.toml"), {"-o": "out/sw", "-j": "1"}, input_file="{IN}/s.toml"),
}

#: The sweep file of the "sweep-file" cases, less the key a case changes: key -> TOML literal.
SWEEP_FILE = {"policies": '["fcfs"]', "workloads": '["{IN}/w.csv"]', "arrival": '"poisson"', "rates": "[8.0]",
              "num_requests": "5"}
#: Keys of a sweep file holding a list.
SWEEP_LIST_KEYS = ("workloads", "policies", "profiles", "rates", "seeds", "replicas", "routers")
#: Keys of a sweep file holding one value.
SWEEP_SCALAR_KEYS = ("arrival", "num_requests", "duration", "scoring", "max_num_batched_tokens", "max_num_seqs",
                     "preemption", "block_size", "max_model_len")
#: TOML literals tried as a sweep file's value (or a list's one member).
TOML_VALUES = ["nan", "inf", "-inf", "-0", "-0.0", "1e308", "-1e308", str(2**63 - 1), str(-2**63), "-1", "0", "0.5",
               "true", "{a = 1}", "[]", "1979-05-27"]


@dataclass(frozen=True)
class Case:
    """One command line: ``command`` a key of :data:`BASES`, ``option`` the option changed (``ARG`` a positional
    argument), ``value`` its hostile value (None: the option given twice)."""

    command: str
    option: str
    value: str | None

    def argv(self, inputs: Path, cwd: Path | None = None) -> list[str]:
        """The command line, in ``cwd`` (where a "sweep-file" case writes its sweep file)."""
        base = BASES[self.command]
        if self.command == "sweep-file":
            import json

            entries = {k: v.replace("{IN}", str(inputs)) for k, v in SWEEP_FILE.items()}
            if self.option == "BASE":
                text = "".join(f"{k} = {v}\n" for k, v in entries.items())
            elif self.value is None:  # (a key twice: TOML refuses it)
                text = "".join(f"{k} = {v}\n" for k, v in entries.items()) + f"{self.option} = {entries[self.option]}\n"
            else:
                literal = self.value if self.value in TOML_VALUES else json.dumps(
                    self.value.replace("{IN}", str(inputs)).replace("{INPUT}", str(inputs / "s.toml")), ensure_ascii=False)
                entries[self.option] = f"[{literal}]" if self.option in SWEEP_LIST_KEYS and literal != "[]" else literal
                text = "".join(f"{k} = {v}\n" for k, v in entries.items())
            (cwd / "fuzz.toml").write_text(text)
            return ["sweep", str(cwd / "fuzz.toml"), "-o", "out/sw", "-j", "1"]
        fill = lambda v: v.replace("{IN}", str(inputs)).replace("{INPUT}", base.input_file.replace("{IN}", str(inputs)))
        args = [fill(a) for a in base.args]
        options = dict(base.options)
        if self.option == "BASE":  # (the base command itself)
            pass
        elif self.option == "ARG":
            args[-1] = fill(self.value)
        elif self.value is None:  # given twice: its base value (or a flag) again
            value = options.get(self.option)
            options.pop(self.option, None)
            tail = [self.option] if value is None else [self.option, fill(value)]
            return args + _flat(options, fill) + tail + tail
        else:
            options.pop(self.option, None)
            options[self.option] = self.value
        return args + _flat(options, fill)

    def __str__(self) -> str:
        shown = "(twice)" if self.value is None else repr(self.value)
        return f"{self.command} {self.option} {shown}"


def _flat(options: dict[str, str | None], fill) -> list[str]:
    out = []
    for name, value in options.items():
        out += [name] if value is None else [name, fill(value)]
    return out


def command_options(command: str) -> list[tuple[str, bool]]:
    """The options of ``command`` (e.g. "plot cdf") as (its first long name, whether it is a flag), --help left out,
    and ("ARG", False) where it takes a positional argument."""
    import click

    from ltrsched.cli import cli

    ctx = click.Context(cli)
    cmd = cli
    for word in command.split():
        cmd = cmd.get_command(ctx, word)
    found = []
    for p in cmd.params:
        if isinstance(p, click.Argument):
            found.append(("ARG", False))
        elif p.expose_value:
            name = next((o for o in p.opts if o.startswith("--")), p.opts[0])
            short = next((o for o in p.opts if o in BASES[command].options or o in BASES[command].specs), name)
            found.append((short, bool(p.is_flag)))
    return found


def all_cases(commands=None) -> list[Case]:
    """Every case of :data:`BASES`' commands (``commands``: only these)."""
    cases = []
    for command in commands or BASES:
        base = BASES[command]
        if command == "sweep-file":
            for key in (*SWEEP_LIST_KEYS, *SWEEP_SCALAR_KEYS):
                specs = {"policies": POLICY_SPECS, "routers": ROUTER_SPECS, "workloads": WORKLOADS,
                         "profiles": PROFILES}.get(key, [])
                cases += [Case(command, key, v) for v in GENERIC + TOML_VALUES + specs]
            cases += [Case(command, key, None) for key in SWEEP_FILE]
            continue
        for option, flag in command_options(command):
            if option == "ARG":
                values = [v for v in GENERIC if v != "{INPUT}"] + base.specs.get("ARG", [])
            elif flag:
                values = []
            else:
                values = base.values(option)
            cases += [Case(command, option, v) for v in values]
            if option != "ARG":
                cases.append(Case(command, option, None))
    return cases


def make_inputs(directory: Path) -> Path:
    """The input files the cases read, in ``directory``: a workload, a sweep file, a saved run, a profile, prompts,
    a small untrained predictor checkpoint, the hostile workload files (:data:`WORKLOAD_FILES`, in ``wl/``)."""
    import json

    import numpy as np

    from ltrsched.policies import make_policy
    from ltrsched.sim import SimConfig, simulate
    from conftest import LinearProfile, make_workload

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "adir").mkdir(exist_ok=True)
    (directory / "afile.txt").write_text("x\n")
    (directory / "wl").mkdir(exist_ok=True)
    for name, content in WORKLOAD_FILES.items():
        path = directory / "wl" / name
        if callable(content):
            content(path)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    (directory / "w.csv").write_text("prompt_tokens,output_tokens\n" + "".join(f"{20 + i},{5 + 3 * i}\n"
                                                                               for i in range(8)))
    (directory / "line\nbreak.csv").write_bytes((directory / "w.csv").read_bytes())  # (a name holding a line break)
    (directory / "prof").mkdir(exist_ok=True)
    for name, make in PROFILE_FILES.items():
        path = directory / "prof" / name
        if make is None:
            path.mkdir(exist_ok=True)
        else:
            content = make()
            path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    special = directory.parent / "special"
    special.mkdir(exist_ok=True)
    if not (special / "fifo.json").exists():
        os.mkfifo(special / "fifo.json")
    if not (special / "loop.json").is_symlink():
        (special / "loop.json").symlink_to(special / "loop.json")
    with open(special / "sparse.json", "wb") as fh:
        fh.truncate(65 << 20)  # (no blocks on disk: a file of NUL bytes above the 64 MiB a profile may hold)
    (directory / "s.toml").write_text(f'policies = ["fcfs"]\nworkloads = ["{directory / "w.csv"}"]\n'
                                      'arrival = "poisson"\nrates = [8.0]\nnum_requests = 5\n')
    result = simulate(make_workload([20, 20, 20], [3, 9, 27], np.arange(3) * 0.05), make_policy("fcfs"),
                      SimConfig(profile=LinearProfile(), record_steps=True))
    result.meta["run_spec"] = {"workload": "test", "policy": "fcfs", "label": "fcfs", "rate": 5.0,
                               "profile": "linear-test", "arrival": "poisson", "seed": 0, "scoring": "none"}
    result.save(directory / "run")
    from ltrsched.sim.profiles import load_profile
    from ltrsched.sim.profiles.io import save_profile

    save_profile(load_profile("cpu-llama-tiny"), directory / "profile.json")
    from ltrsched.predictors.config import PredictorConfig
    from ltrsched.predictors.predictor import Predictor

    Predictor(PredictorConfig(dim=1024, hidden=8)).save(directory / "ckpt")  # (untrained: scores all the same)
    (directory / "prompts.json").write_text(json.dumps([{"id": f"p{i}", "conversations": [
        {"from": "human", "value": f"Tell me about the number {i} in a few words, please."},
        {"from": "gpt", "value": f"The number {i} is a whole number, {'much ' * 4 * i}more than {i - 1}."}]}
        for i in range(4)]))
    return directory


def snapshot(directory: Path) -> dict[str, str]:
    """Every file under ``directory`` -> its SHA-256."""
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def _remove_new(inputs: Path, before: dict[str, str]) -> None:
    """Remove what a case wrote under ``inputs`` (paths not in ``before``, nor a directory holding one)."""
    import shutil

    kept = {Path(name) for name in before} | {parent for name in before for parent in Path(name).parents}
    for path in sorted(inputs.rglob("*"), key=lambda p: -len(p.parts)):
        if path.relative_to(inputs) not in kept and path.name != "adir":
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            elif path.exists() or path.is_symlink():
                path.unlink()


@contextlib.contextmanager
def engine_stopped():
    """The points where a command starts the engine or loads a model raise :class:`ReachedEngine` meanwhile."""
    import importlib

    def stop(*args, **kwargs):
        raise ReachedEngine()

    def start_engine(load_format=None, emulate_profile=None, skip_idle=False, **options):
        """What ``start_engine`` checks before it starts one, then :class:`ReachedEngine`."""
        from ltrsched.validation import engines

        config = engines.engine_config(load_format=load_format, emulate_profile=emulate_profile, **options)
        engines.resolve_load_format(config.model, load_format)
        if emulate_profile is not None:
            engines.emulated_config(config, emulate_profile)
        raise ReachedEngine()

    def label_prompts(jobs, out, model, max_tokens, main, sample, chunk, engine, **kwargs):
        """What ``label_prompts`` checks of the engine's options before the model loads, then :class:`ReachedEngine`."""
        from ltrsched.labelling.run import engine_settings

        engine_settings(model, max_tokens, engine)
        raise ReachedEngine()

    targets = [("ltrsched.validation.commands", "start_engine"),
               ("ltrsched.validation.probe_runs", "measure_probe_runs"),
               ("ltrsched.validation.engine_passes", "run_passes"), ("ltrsched.validation.engines", "start_engine"),
               ("ltrsched.labelling.run", "label_prompts"),
               ("ltrsched.predictors.commands", "work_starts")]
    saved = []
    for module, name in targets:
        mod = importlib.import_module(module)
        saved.append((mod, name, getattr(mod, name)))
        setattr(mod, name, {"start_engine": start_engine, "label_prompts": label_prompts}.get(name, stop))
    try:
        yield
    finally:
        for mod, name, value in saved:
            setattr(mod, name, value)


@dataclass
class Outcome:
    case: Case
    code: int | str
    seconds: float
    problem: str | None  # None: the case passed
    stderr: str = ""


def run_case(case: Case, inputs: Path, cwd: Path, limit: float, run=None) -> Outcome:
    """Run ``case`` in ``cwd`` (reading ``inputs``) under ``limit`` seconds; what went wrong, if anything.
    ``run``: the in-process runner (default :func:`cli_helpers.run_cli_captured`; a test passes its own, with capsys)."""
    from cli_helpers import run_cli_captured

    run = run or (lambda *a, cwd: run_cli_captured(*a, cwd=cwd))
    before = snapshot(inputs)
    argv = case.argv(inputs, cwd)

    def alarm(signum, frame):
        raise Hang()

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, limit)
    start = time.perf_counter()
    result, code, problem = None, None, None
    try:
        with engine_stopped():
            result = run(*argv, cwd=cwd)
        code = result.returncode
    except ReachedEngine:
        code = ENGINE
    except Hang:
        code, problem = "hang", f"still running after {limit:g} s"
    except Exception as exc:  # (a traceback in a real process)
        code, problem = "traceback", f"{type(exc).__name__}: {exc}"[:300]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    seconds = time.perf_counter() - start
    err = result.stderr if result is not None else ""
    if problem is None and result is not None:
        lines = err.strip().splitlines()
        if code not in (0, 2):
            problem = f"exit code {code}"
        elif "Traceback" in err:
            problem = "a traceback on stderr"
        elif code == 2 and not (lines and lines[-1].startswith("error: ")
                                and all(line.startswith(NOTICE_PREFIXES) for line in lines[:-1])):
            problem = f"{len(lines)} stderr lines for exit code 2"
    after = snapshot(inputs)  # (new files are an output written into an input's directory: no input changed)
    changed = sorted(name for name, digest in before.items() if after.get(name) != digest)
    if problem is None and changed:
        problem = f"input files changed: {', '.join(changed)}"
    _remove_new(inputs, before)  # (the next case reads the inputs as made: an empty adir stays empty)
    return Outcome(case, code, seconds, problem, err)


def main(argv=None) -> int:
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=1000, help="cases drawn from all of them (0: all)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--limit", type=float, default=60.0, help="seconds a case may run")
    parser.add_argument("--commands", nargs="*", default=None)
    parser.add_argument("--log", type=Path, default=None, help="write each case's outcome here (JSON lines)")
    args = parser.parse_args(argv)
    cases = all_cases(args.commands)
    total = len(cases)
    if args.cases and args.cases < total:
        cases = random.Random(args.seed).sample(cases, args.cases)
    root = Path(tempfile.mkdtemp(prefix="ltrsched-fuzz-"))
    inputs = make_inputs(root / "inputs")
    counts: dict[str, int] = {}
    failures, slow = [], []
    log = args.log.open("w") if args.log else None
    for command in dict.fromkeys(c.command for c in cases):  # (untimed: a first call's imports, e.g. vLLM's, take
        warm = root / f"warm-{command.replace(' ', '-')}"     # a minute on a loaded machine)
        warm.mkdir()
        run_case(Case(command, "BASE", None), inputs, warm, 3600)
    for i, case in enumerate(cases):
        cwd = root / f"case{i}"
        cwd.mkdir()
        out = run_case(case, inputs, cwd, args.limit)
        key = "fail" if out.problem else f"exit {out.code}" if out.code != ENGINE else ENGINE
        counts[key] = counts.get(key, 0) + 1
        if out.problem:
            failures.append(out)
            print(f"FAIL {case}: {out.problem} | {out.stderr.strip()[-400:]!r}", flush=True)
        if out.seconds > 1.0:
            slow.append(out)
        if log:
            import json

            log.write(json.dumps({"command": case.command, "option": case.option, "value": case.value,
                                  "code": out.code, "seconds": round(out.seconds, 3), "problem": out.problem,
                                  "stderr": out.stderr[-500:]}, ensure_ascii=False) + "\n")
            log.flush()
    print(f"{len(cases)} of {total} cases (seed {args.seed}): " + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    for command in BASES:
        mine = [c for c in cases if c.command == command]
        if mine:
            print(f"  {command}: {len(mine)} cases, {sum(1 for f in failures if f.case.command == command)} failed")
    print(f"{len(slow)} cases over 1 s: " + "; ".join(f"{o.case} {o.seconds:.1f}s" for o in
                                                   sorted(slow, key=lambda o: -o.seconds)[:15]))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
