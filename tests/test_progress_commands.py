"""The plain progress line (``LABEL: N of TOTAL NOUN VERB, S s`` on a stderr that is not a terminal, about every 10 s)
for the long commands that showed progress only on a terminal (tqdm's bar), so that piped, CI or nohup runs printed
nothing until done: ``capacity`` (runs done), ``train`` (lists trained), ``label`` (prompts labelled), ``validate``
(engine runs done, and each run's requests finished) and ``profile`` (its probes' requests finished). The clock is a
fake one (no test sleeps), and the engine-backed commands' wiring is checked on stand-in engines (no vLLM)."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import pytest

from cli_helpers import run_cli_fast
from test_progress import FakeClock


@pytest.fixture(autouse=True)
def every_10_s(monkeypatch):
    """The lines every 10 s, as outside the test suite (its conftest turns them off)."""
    monkeypatch.delenv("LTRSCHED_PROGRESS_EVERY_S", raising=False)


def _lines(stderr: str, label: str, noun: str) -> list[tuple[int, int, int]]:
    """The progress lines of ``label`` counting ``noun`` (e.g. ``runs done``) as (done, total, seconds)."""
    found = []
    for line in stderr.splitlines():
        m = re.fullmatch(rf"{re.escape(label)}: ([\d,]+) of ([\d,]+) {noun}, (\d+) s", line)
        if m:
            found.append(tuple(int(g.replace(",", "")) for g in m.groups()))
    return found


def _counting(lines, total: int) -> bool:
    """Lines of ``total`` items, counting up, each after 10 s or more."""
    done = [d for d, _, _ in lines]
    return bool(lines) and all(t == total and 0 < d <= total and s >= 10 for d, t, s in lines) and done == sorted(done)


def test_capacity_prints_runs_done(tmp_path, capsys, monkeypatch):
    """The search's bar (each round adds its runs to its total) is a plain one off a terminal; the search is a
    stand-in that counts three runs (a real one is seconds of runs)."""
    from ltrsched.errors import UserError

    def search(templates, slos, seeds, out, backend, bar=None, **options):
        bar.total = (bar.total or 0) + 3
        bar.refresh()
        for _ in range(3):
            bar.update(1)
        raise UserError("stand-in: stopped after its runs")

    monkeypatch.setattr("ltrsched.experiments.capacity.search_capacity", search)
    monkeypatch.setattr("ltrsched.progress.now", FakeClock(6.0))
    r = run_cli_fast(capsys, "capacity", "-w", "lmsys-like", "-n", "60", "--seeds", "1", "-p", "fcfs",
                     "--slo", "ttft_p90=5", "--out", tmp_path / "cap")
    assert r.returncode == 2 and r.stderr.endswith("error: stand-in: stopped after its runs\n"), r.stderr
    assert _counting(_lines(r.stderr, "capacity", "runs done"), 3), r.stderr
    assert "runs done" not in r.stdout


def test_train_prints_lists_trained(tmp_path, capsys, monkeypatch):
    words = "please explain the story of a word list write answer today city code python".split()
    for name, n in (("train", 96), ("eval", 16)):
        (tmp_path / f"{name}.jsonl").write_text("".join(
            json.dumps({"prompt": " ".join(words[(i + k) % len(words)] for k in range(3 + i % 5)) + f" {name} {i}",
                        "output_tokens": 10 + 7 * (i % 11)}) + "\n" for i in range(n)))
    monkeypatch.setattr("ltrsched.progress.now", FakeClock(3.0))
    r = run_cli_fast(capsys, "train", "--data", tmp_path / "train.jsonl", "--eval-data", tmp_path / "eval.jsonl",
                     "-o", tmp_path / "m", "--epochs", "2")
    assert r.returncode == 0, r.stderr
    assert _counting(_lines(r.stderr, "train rank", "lists trained"), 2 * 3), r.stderr  # (96 prompts: 3 lists of 32)
    assert "lists trained" not in r.stdout


def test_label_prints_prompts_labelled(capsys, monkeypatch):
    """The labelling's serving loop on a stand-in engine (each prompt generates 3 tokens, at once)."""
    import ltrsched.labelling.generate as generate
    from ltrsched.labelling.jobs import LabelJob
    from ltrsched.labelling.run import _serve_on, _Stats

    def serve(driver, requests, on_done, window):
        for i, r in enumerate(requests):
            on_done(i, generate.Generated(len(r.prompt_ids), 3, "stop"))

    monkeypatch.setattr(generate, "serve_requests", serve)
    monkeypatch.setattr("ltrsched.progress.now", FakeClock(3.0))
    sampling = SimpleNamespace(temperature=0.0, top_p=1.0, seed=0, repetition_penalty=1.0,
                               request_seed=lambda key: None)
    settings = SimpleNamespace(sampling=lambda run: sampling, max_tokens=20, model="m", model_sha256="0",
                               keeps_text=False)
    driver = SimpleNamespace(host=SimpleNamespace(to_dict=lambda: {}), max_model_len=256)
    stats = _Stats()
    stats.context = 256
    written = []
    jobs = [LabelJob("main", "train", f"k{i}", f"prompt {i}", "") for i in range(12)]
    _serve_on(driver, jobs, [[1, 2, 3]] * 12, SimpleNamespace(vllm_max_num_seqs=4),
              settings, SimpleNamespace(write=written.extend), 5, stats, False)
    out = capsys.readouterr()
    assert len(written) == stats.labelled == 12
    assert _counting(_lines(out.err, "label", "prompts labelled"), 12), out.err
    assert out.out == ""


class StandInEngine:
    """What a validation's engine runs and a profile's probes read of a started engine; each run is recorded as
    (policy, progress, label) and returns a result that saves nothing."""

    def __init__(self):
        self.config = SimpleNamespace(block_size=16, vllm_max_num_seqs=8, max_num_seqs=8, max_num_batched_tokens=64)
        self.runs = []

    def describe(self):
        return "stand-in"

    def num_gpu_blocks(self):
        return 100

    def max_model_len(self):
        return 1000

    def prepare(self, workload):
        return workload

    def run(self, workload, policy, progress=False, progress_label=None):
        self.runs.append((policy.name, progress, progress_label))
        return SimpleNamespace(meta={}, save=lambda path: None)


def _workload():
    from conftest import make_workload

    return make_workload([5, 6, 7], [3, 4, 5], [0.0, 0.1, 0.2])


def test_validate_prints_engine_runs_done_and_shows_each_runs_requests(tmp_path, capsys, monkeypatch):
    """Before: each run's requests on a terminal only, and no count of the runs (a validation is an hour of runs of
    seconds to minutes each)."""
    from ltrsched.validation import commands

    monkeypatch.setattr(commands, "command_line", lambda: "ltrsched validate")
    monkeypatch.setattr("ltrsched.progress.now", FakeClock(6.0))
    eng = StandInEngine()
    commands._runs_on(eng, {"prompts": "random"}, [("burst", _workload())], ["fcfs", "srtf"], tmp_path,
                      ["engine-0", "engine-1"], 2, {}, {})
    out = capsys.readouterr()
    assert _counting(_lines(out.err, "validate", "engine runs done"), 4), out.err
    assert eng.runs == [("fcfs", True, "engine fcfs on burst, repeat 1"), ("srtf", True, "engine srtf on burst, repeat 1"),
                        ("fcfs", True, "engine fcfs on burst, repeat 2"), ("srtf", True, "engine srtf on burst, repeat 2")]
    assert "engine runs done" not in out.out


def test_a_spread_pass_prints_its_engine_runs_done(tmp_path, capsys, monkeypatch):
    from ltrsched.validation.engine_passes import _pass_on

    monkeypatch.setattr("ltrsched.progress.now", FakeClock(6.0))
    eng = StandInEngine()
    cases = [("burst", _workload()), ("poisson@2/s", _workload())]
    dirs = {(case, spec): tmp_path / case / spec for case, _ in cases for spec in ("fcfs", "srtf")}
    _pass_on(eng, cases, ["fcfs", "srtf"], dirs, 1, "ltrsched validate", True, True, None, None)
    assert _counting(_lines(capsys.readouterr().err, "engine start 2", "engine runs done"), 4)
    assert eng.runs[0] == ("srtf", True, "engine srtf on poisson@2/s, repeat 2")  # (an odd pass runs in reverse)


def test_the_emulated_engine_shows_progress_as_the_real_one(monkeypatch):
    """``Engine.run`` dropped ``progress`` for the emulated engine: `replay --emulate` and every emulated validation
    run showed nothing, even on a terminal."""
    from ltrsched.validation.engines import Engine

    seen = {}

    def emulate(workload, policy, step_time, config, driver=None, **kwargs):
        seen.update(kwargs)
        return SimpleNamespace(summary={})

    monkeypatch.setattr("ltrsched.engine.emulate.emulate", emulate)
    eng = Engine(driver=None, config=SimpleNamespace(num_gpu_blocks=9), emulated_profile=SimpleNamespace(step_time=None))
    eng.run(_workload(), SimpleNamespace(name="fcfs"), progress=True, progress_label="engine fcfs on burst")
    assert seen == {"progress": True, "progress_label": "engine fcfs on burst"}


def test_profile_shows_its_probes_progress(tmp_path, capsys, monkeypatch):
    """``profile`` asked for progress only on a terminal; its probes' run is labelled as the profile's."""
    import ltrsched.validation.probe_runs as probe_runs
    from ltrsched.errors import UserError

    asked = []

    def measure(engine, quick, repeats, runs, progress=False, on_run=None):
        asked.append(progress)
        raise UserError("stand-in: no engine")

    monkeypatch.setattr(probe_runs, "measure_probe_runs", measure)
    r = run_cli_fast(capsys, "profile", "--emulate", "a100-llama3-8b", "--quick", "--out", tmp_path / "p.json")
    assert r.returncode == 2 and asked == [True], r.stderr

    class Stop(Exception):
        pass

    eng = StandInEngine()
    eng.run = lambda workload, policy, progress=False, progress_label=None: (_ for _ in ()).throw(
        Stop((progress, progress_label)))
    monkeypatch.setattr("ltrsched.validation.probe_cache.check_probe_cache", lambda *a, **k: None)
    monkeypatch.setattr("ltrsched.validation.profiling.probe_plan", lambda *a, **k: SimpleNamespace(repeats=1))
    monkeypatch.setattr("ltrsched.validation.profiling.probe_workload", lambda *a, **k: _workload())
    with pytest.raises(Stop) as stopped:
        probe_runs._probes_on(eng, True, None, True)
    assert stopped.value.args[0] == (True, "profile probes")


@pytest.mark.parametrize("router", ["round-robin", "random", "least-outstanding", "least-kv", "least-work:tau=0.62",
                                    "rank:tau=0.62"])
@pytest.mark.parametrize("replicas", [1, 3])
def test_a_cluster_prints_progress_under_every_router_kind(tmp_path, capsys, monkeypatch, router, replicas):
    """Routers that never read the replicas' state route every request before the run (``_route_up_front``); the
    others route each at its arrival during it: the lines count requests finished on the replicas either way, one
    replica behind a router too."""
    w = tmp_path / "w.jsonl"
    w.write_text("".join(json.dumps({"prompt": f"p {i}", "prompt_tokens": 5 + i, "output_tokens": 3 + 2 * i}) + "\n"
                         for i in range(30)))
    monkeypatch.setattr("ltrsched.progress.now", FakeClock(3.0))
    r = run_cli_fast(capsys, "simulate", "-w", w, "--replicas", str(replicas), "--router", router,
                     "--arrival", "poisson", "--rate", "50")
    assert r.returncode == 0, r.stderr
    assert _counting(_lines(r.stderr, f"simulate fcfs x{replicas}", "requests finished"), 30), r.stderr


def test_label_prints_prompts_templated_and_tokenised(capsys, monkeypatch):
    """Before the engine starts, every prompt goes through the chat template and the tokenizer (minutes for 100,000
    prompts): a line of its own, and the same ids as all at once (a stand-in template: a prompt's ids are its
    length and its system text's)."""
    from ltrsched.labelling import run
    from ltrsched.labelling.jobs import LabelJob

    class Chat:
        def encode(self, prompts, systems=None):
            return [[len(p), len(s or "")] for p, s in zip(prompts, systems or [None] * len(prompts))]

    monkeypatch.setattr(run, "ENCODE_CHUNK", 4)
    monkeypatch.setattr("ltrsched.progress.now", FakeClock(6.0))
    jobs = [LabelJob("main", "train", f"k{i}", "p" * i, "s" * (i % 3)) for i in range(10)]
    assert run._encode(Chat(), jobs) == Chat().encode([j.prompt for j in jobs], [j.system or None for j in jobs])
    out = capsys.readouterr()
    assert _counting(_lines(out.err, "label", "prompts templated and tokenised"), 10), out.err
    assert out.out == ""
