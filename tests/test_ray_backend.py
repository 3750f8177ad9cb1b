"""Sweeps on Ray (issue 15, item 1): the same files as the process pool, resumable, workers that die are
run again once and then reported, and bad setups (no Ray, a bad --address) are one-line errors.

These need Ray (``ltrsched[ray]``, part of the ``dev`` extra): CI tests Ray here. Starting a local Ray instance
takes seconds of CPU, so one CLI run starts its own (the default, no ``--address``) and the other tests join
one instance this module starts once (:func:`ray_address`), each CLI run being its own Ray job.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from ltrsched.experiments.runner import DIGEST_KEY, results_digest

#: Summary fields that hold wall-clock time, the only things allowed to differ between two computations
#: of the same run: ``wall_time_s`` and ``speedup_vs_real_time`` (makespan / wall time).
WALL_CLOCK_FIELDS = ("wall_time_s", "speedup_vs_real_time")


@pytest.fixture(scope="module", autouse=True)
def ray_installed():
    """Ray must import (the README's test command installs it with the dev extra): fail, don't skip."""
    try:
        import ray  # noqa: F401
    except ImportError as exc:
        pytest.fail(f"Ray does not import ({exc}); install it with pip install -e '.[dev]'")


@pytest.fixture(scope="module")
def ray_address():
    """The GCS address (``host:port``) of a local Ray instance started in this process for the module's tests
    that join a running instance, shut down at the end. It has 2 CPUs and Ray's default for a new local
    instance, token authentication: ``ray.init`` sets ``RAY_AUTH_MODE=token`` in ``os.environ``, so the CLI
    runs started while it is up send the token. The environment is restored at the end."""
    import logging

    import ray

    saved = dict(os.environ)
    for name in ("RAY_AUTH_MODE", "RAY_ADDRESS"):  # a new instance with Ray's defaults, not one named elsewhere
        os.environ.pop(name, None)
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # (as the backend does: no usage reports)
    try:
        context = ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.ERROR,
                           log_to_driver=False, object_store_memory=100 * 2**20)
        yield context.address_info["gcs_address"]
    finally:
        ray.shutdown()
        for name in set(os.environ) - set(saved):
            del os.environ[name]
        os.environ.update(saved)


def run_cli(*args, cwd=None, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "ltrsched.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=timeout)


def counts(stdout: str) -> tuple[int, int]:
    m = re.search(r"(\d+) runs simulated, (\d+) reused", stdout)
    assert m, stdout[-2000:]
    return int(m.group(1)), int(m.group(2))


def assert_one_line_error(r, message, code=2):
    assert r.returncode == code, (r.stdout[-1000:], r.stderr[-2000:])
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], r.stderr[-2000:]


def output_files(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by relative path (lock files aside: they hold nothing), with the
    wall-clock fields (and the digest of the results, which covers them) taken out of ``summary.json`` and
    ``sweep.csv``."""
    files = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.name == ".lock":
            continue
        data = path.read_bytes()
        if path.name == "summary.json":
            doc = json.loads(data)
            assert all(k in doc["summary"] for k in WALL_CLOCK_FIELDS)  # the fields left out exist
            # (the digest of the results covers the wall-clock fields too: checked here, then left out)
            assert doc["meta"].pop(DIGEST_KEY) == results_digest(doc)
            for k in WALL_CLOCK_FIELDS:
                del doc["summary"][k]
            data = json.dumps(doc, sort_keys=True).encode()
        elif path.name == "sweep.csv":
            data = pl.read_csv(path).drop(WALL_CLOCK_FIELDS).write_csv().encode()
        files[str(path.relative_to(root))] = data
    return files


SWEEP = ('workloads = ["lmsys-like"]\npolicies = ["fcfs", "ltr:tau=0.6,starve=200,quantum=10"]\n'
         'arrival = "poisson"\nrates = [8.0, 24.0]\nseeds = [0, 1]\nnum_requests = 120\n')


@pytest.fixture(scope="module")
def pool_sweep(tmp_path_factory):
    """:data:`SWEEP` computed once on the process pool (2 spawned workers), the reference both Ray sweeps below are
    compared with: (the CLI's result, the directory holding ``s.toml`` and the sweep's ``--out pool``). The command
    runs in this process (the pool's workers are spawned either way): no interpreter or import of its own."""
    from cli_helpers import run_cli_captured

    root = tmp_path_factory.mktemp("pool-sweep")
    (root / "s.toml").write_text(SWEEP)
    local = run_cli_captured("sweep", "s.toml", "--out", "pool", "--jobs", "2", cwd=root)
    assert local.returncode == 0, local.stderr[-2000:]
    return local, root


def test_ray_sweep_writes_the_same_files_as_the_process_pool_and_resumes(tmp_path, request, pool_sweep):
    """The backend's default: it starts a local Ray instance of its own and shuts it down (this module's shared
    instance starts later, below, and is joined with --address only); the resumed half joins that one."""
    (tmp_path / "s.toml").write_text(SWEEP)
    local, pool_root = pool_sweep
    ray = run_cli("sweep", "s.toml", "--out", "ray", "--backend", "ray", "--jobs", "2", cwd=tmp_path)
    assert ray.returncode == 0, ray.stderr[-2000:]
    assert counts(local.stdout) == counts(ray.stdout) == (8, 0)
    pool_files, ray_files = output_files(pool_root / "pool"), output_files(tmp_path / "ray")
    assert len(pool_files) == 8 * 2 + 1  # requests.parquet + summary.json per run, sweep.csv
    assert pool_files.keys() == ray_files.keys()  # the same run keys
    assert [k for k in pool_files if pool_files[k] != ray_files[k]] == []  # the same bytes
    assert ray.stdout.splitlines()[-1] == local.stdout.splitlines()[-1].replace("pool", "ray")

    # resumable: a finished run is skipped, a missing one is computed
    run = next((tmp_path / "ray" / "runs").iterdir())
    (run / "summary.json").unlink()
    address = request.getfixturevalue("ray_address")
    again = run_cli("sweep", "s.toml", "--out", "ray", "--backend", "ray", "--address", address, "--jobs", "2",
                    cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert counts(again.stdout) == (1, 7)
    assert output_files(tmp_path / "ray") == ray_files


def test_capacity_on_ray_finds_the_same_capacities_from_the_same_runs(tmp_path, ray_address, capsys):
    """The process pool's search runs in this process (run_cli_fast: its workers are spawned either way); Ray's in a
    command of its own, which joins the module's instance by --address."""
    from cli_helpers import run_cli_fast

    args = ["capacity", "-w", "lmsys-like", "-n", "200", "--seeds", "1", "-p", "fcfs", "--max-num-seqs", "16",
            "--slo", "ttft_p90=1", "--tolerance", "0.2", "--start-rate", "2", "--jobs", "2"]
    local = run_cli_fast(capsys, *args, "--out", "pool", cwd=tmp_path)
    assert local.returncode == 0, local.stderr[-2000:]
    ray = run_cli(*args, "--out", "ray", "--backend", "ray", "--address", ray_address, cwd=tmp_path)
    assert ray.returncode == 0, ray.stderr[-2000:]
    pool_files, ray_files = output_files(tmp_path / "pool"), output_files(tmp_path / "ray")
    assert pool_files.keys() == ray_files.keys()
    assert [k for k in pool_files if pool_files[k] != ray_files[k]] == []  # figures included
    assert pl.read_csv(tmp_path / "ray" / "capacity.csv")["status"].to_list() == ["found"]


THRASHING_POLICY = '''
from ltrsched.policies import LiveView, Policy, batching, register


@register
class ThrashAtOnce(Policy):
    """FCFS, whose runs the thrash guard stops at their first preemption (its cap of preemptions per request is 0
    for this policy's runs only: a Ray worker serves other tests' runs after this one)."""
    name = "thrash-at-once"

    def rank(self, view: LiveView):
        return view.order_by(view.arrival_time)


_preempted = getattr(batching.ThrashGuard.preempted, "unwrapped", batching.ThrashGuard.preempted)


def preempted(self, count, recomputed, step, policy, *args, **kwargs):
    if getattr(policy, "name", None) != ThrashAtOnce.name:
        return _preempted(self, count, recomputed, step, policy, *args, **kwargs)
    cap, batching.MAX_PREEMPTIONS_PER_REQUEST = batching.MAX_PREEMPTIONS_PER_REQUEST, 0
    try:
        return _preempted(self, count, recomputed, step, policy, *args, **kwargs)
    finally:
        batching.MAX_PREEMPTIONS_PER_REQUEST = cap


preempted.unwrapped = _preempted
batching.ThrashGuard.preempted = preempted
'''


def test_capacity_on_ray_goes_on_below_a_rate_whose_run_thrashed_as_the_process_pool_does(tmp_path, ray_address,
                                                                                          capsys, monkeypatch):
    """The Ray backend's side of tests/test_capacity_thrash.py: a run a preemption thrash stopped in a Ray task misses
    the SLOs there, as in this process (the same tables, the note column, the stderr lines), and is not cached (a
    rerun runs it again). Both commands run in this process (run_cli_fast); the Ray one uses this module's instance
    (this process's Ray session, as a library caller's), so no Ray starts."""
    from cli_helpers import run_cli_fast
    from ltrsched.experiments import runner
    from ltrsched.experiments.capacity import STOPPED_TEXT, specs_at
    from ltrsched.experiments.runspec import RunSpec
    from ltrsched.policies import batching

    monkeypatch.setattr(batching.ThrashGuard, "preempted", batching.ThrashGuard.preempted)  # (the plugin wraps it)
    (tmp_path / "thrash.py").write_text(THRASHING_POLICY)
    env = {**os.environ, "LTRSCHED_PLUGINS": str(tmp_path / "thrash.py")}
    workload = tmp_path / "w.csv"  # (above about 1 req/s its requests overflow the KV cache: test_capacity_thrash)
    workload.write_text("prompt_tokens,output_tokens\n" + "5000,1000\n" * 30)
    args = ["capacity", "-w", str(workload), "-n", "30", "--seeds", "1", "-p", "thrash-at-once", "--slo",
            "ttft_p90=10000", "--start-rate", "1", "--tolerance", "0.5"]
    runs = []
    for out, backend in (("pool", ["--jobs", "1"]), ("ray", ["--backend", "ray"]), ("ray", ["--backend", "ray"])):
        r = run_cli_fast(capsys, *args, "--out", tmp_path / out, *backend, cwd=tmp_path, env=env)
        assert r.returncode == 0, r.stderr[-2000:]
        runs.append(r)
    assert "1 runs simulated, 0 reused, 2 stopped for preemption thrash" in runs[0].stdout
    assert "1 runs simulated, 0 reused, 2 stopped for preemption thrash" in runs[1].stdout
    assert "0 runs simulated, 1 reused, 2 stopped for preemption thrash" in runs[2].stdout  # (stopped: not cached)
    for name in ("capacity.csv", "capacity-rates.csv", "capacity.md"):
        assert (tmp_path / "pool" / name).read_bytes() == (tmp_path / "ray" / name).read_bytes(), name
    rates = pl.read_csv(tmp_path / "ray" / "capacity-rates.csv")
    assert rates["note"].fill_null("").to_list() == ["", STOPPED_TEXT, STOPPED_TEXT]
    assert pl.read_csv(tmp_path / "ray" / "capacity.csv")["limiting_slo"].to_list() == [STOPPED_TEXT]
    said = [[ln for ln in r.stderr.splitlines() if ln.startswith("capacity: ")] for r in runs]
    assert len(said[0]) == 2 and said[1] == said[2] == [ln.replace(str(tmp_path / "pool"), str(tmp_path / "ray"))
                                                        for ln in said[0]]
    assert all(": preemption thrash: 1 preemptions of 30 requests by step " in ln for ln in said[1])
    template = RunSpec("capacity", str(workload), "thrash-at-once", workload=str(workload), policy="thrash-at-once",
                       profile="a100-llama3-8b", num_requests=30, arrival="poisson")
    stopped = [s for rate in (1.414, 2.0) for s in specs_at(template, rate, [0])]
    assert not any(runner.is_done(tmp_path / "ray", s) for s in stopped)


def test_joining_a_running_ray_instance_by_address_and_from_a_library_session(tmp_path, ray_address, pool_sweep):
    """--address joins a running instance (the module's, started with Ray's token authentication) and leaves
    it running; without the token setting the refusal is a one-line error within seconds (Ray alone retries
    for 20 s); a library caller's own Ray session (this process's, the module's instance) is used as it is
    and left open."""
    import ray

    from ltrsched.experiments.runner import open_backend, run_all
    from ltrsched.experiments.runspec import RunSpec

    (tmp_path / "s.toml").write_text(SWEEP)
    address = ray_address
    assert os.environ.get("RAY_AUTH_MODE") == "token"  # (set by ray.init for this process and its children)
    r = run_cli("sweep", "s.toml", "--out", "refused", "--backend", "ray", "--address", address, cwd=tmp_path,
                env={k: v for k, v in os.environ.items() if k != "RAY_AUTH_MODE"})
    assert_one_line_error(r, f"--address {address}: the Ray cluster there requires token authentication; "
                             "set RAY_AUTH_MODE=token")
    assert not (tmp_path / "refused").exists()  # (a hang fails by run_cli's timeout; wall time is not asserted)
    r = run_cli("sweep", "s.toml", "--out", "joined", "--backend", "ray", "--address", address, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert counts(r.stdout) == (8, 0)
    local, pool_root = pool_sweep
    assert output_files(tmp_path / "joined") == output_files(pool_root / "pool")
    assert ray.is_initialized() and ray.cluster_resources().get("CPU") == 2  # the joined instance is still up
    specs = [RunSpec("sweep", "s", "fcfs", workload="lmsys-like", policy=p, profile="a100-llama3-8b",
                     num_requests=60) for p in ("fcfs", "srtf")]
    with open_backend("ray") as backend:
        stats = run_all(specs, tmp_path / "lib", backend=backend, progress=False)
    assert len(stats.ran) == 2 and ray.is_initialized()  # the caller's session is still open
    assert local.returncode == 0


DYING_POLICIES = '''
import os, signal
from pathlib import Path
from ltrsched.policies import LiveView, Policy, register

MARKER = Path({marker!r})


@register
class DieOnce(Policy):
    """FCFS; the first worker to rank with it is killed (SIGKILL), once per marker file."""
    name = "die-once"

    def rank(self, view: LiveView):
        if not MARKER.exists():
            MARKER.write_text("killed once")
            os.kill(os.getpid(), signal.SIGKILL)
        return view.order_by(view.arrival_time)


@register
class DieAlways(Policy):
    """Every worker that ranks with it exits at once."""
    name = "die-always"

    def rank(self, view: LiveView):
        os._exit(3)
'''


def test_a_run_whose_ray_worker_dies_is_retried_once_then_reported_failed(tmp_path, ray_address):
    """On the module's instance, joined: the tasks get the driver's LTRSCHED_PLUGINS through their context."""
    (tmp_path / "dying.py").write_text(DYING_POLICIES.format(marker=str(tmp_path / "killed")))
    env = {**os.environ, "LTRSCHED_PLUGINS": str(tmp_path / "dying.py")}
    (tmp_path / "once.toml").write_text('workloads = ["lmsys-like"]\npolicies = ["fcfs", "die-once"]\n'
                                        'num_requests = 50\n')
    r = run_cli("sweep", "once.toml", "--out", "out", "--backend", "ray", "--address", ray_address, "--jobs", "2",
                cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "killed").exists()  # the worker was killed once ...
    assert re.search(r"warning: run die-once on lmsys-like seed 0 \(runs/\w+\): its worker died "
                     r"\(WorkerCrashedError.*\); running it again", r.stderr), r.stderr[-2000:]
    assert "2 runs simulated, 0 reused, 1 retried after their worker died" in r.stdout  # ... and reported
    assert pl.read_csv(tmp_path / "out" / "sweep.csv").height == 2

    (tmp_path / "always.toml").write_text('workloads = ["lmsys-like"]\npolicies = ["fcfs", "die-always", "srtf"]\n'
                                          'num_requests = 50\n')
    r = run_cli("sweep", "always.toml", "--out", "out2", "--backend", "ray", "--address", ray_address, "--jobs", "2",
                cwd=tmp_path, env=env)
    assert r.returncode == 1, (r.stdout[-1000:], r.stderr[-2000:])
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and "1 run(s) failed, their worker died twice: die-always on lmsys-like" in errors[0]
    assert "The other 2 runs are saved under out2/runs; run the command again to retry" in errors[0]
    assert len(re.findall(r"^warning: run die-always", r.stderr, re.M)) == 2  # died, retried, died again
    from ltrsched.results import RunResult

    done = [d for d in (tmp_path / "out2" / "runs").iterdir() if (d / "summary.json").exists()]
    assert sorted(RunResult.load(d).meta["policy"] for d in done) == ["fcfs", "srtf"]  # the others are written


def test_a_pool_worker_that_dies_is_a_one_line_error_and_the_finished_runs_stay(tmp_path):
    """The process pool cannot tell which run killed its worker (every run under way fails with it), so it
    reports the death in one line instead of a traceback, and a rerun resumes."""
    (tmp_path / "dying.py").write_text(DYING_POLICIES.format(marker=str(tmp_path / "killed")))
    env = {**os.environ, "LTRSCHED_PLUGINS": str(tmp_path / "dying.py")}
    (tmp_path / "s.toml").write_text('workloads = ["lmsys-like"]\npolicies = ["fcfs", "srtf", "die-once"]\n'
                                     'num_requests = 50\n')
    r = run_cli("sweep", "s.toml", "--out", "out", "--jobs", "2", cwd=tmp_path, env=env)
    assert_one_line_error(r, "a worker process died (killed, out of memory or a crash) with runs under way", code=1)
    assert "run the command again to resume" in r.stderr
    again = run_cli("sweep", "s.toml", "--out", "out", "--jobs", "2", cwd=tmp_path, env=env)  # dies only once
    assert again.returncode == 0, again.stderr[-2000:]
    ran, reused = counts(again.stdout)
    assert ran + reused == 3 and ran >= 1


def test_plugin_code_that_raises_in_a_ray_task_is_one_line_naming_where(tmp_path, ray_address):
    """Ray hands back the run's exception without the worker's frames; its task error's text has them, so the
    one-line error still names the plugin's file and line."""
    from test_policies import RAISING_PLUGIN

    plugin = tmp_path / "crashy.py"
    plugin.write_text(RAISING_PLUGIN)
    (tmp_path / "s.toml").write_text('workloads = ["lmsys-like"]\npolicies = ["crashy"]\nnum_requests = 40\n')
    r = run_cli("sweep", "s.toml", "--out", "o", "--backend", "ray", "--address", ray_address, "--jobs", "2",
                cwd=tmp_path, env={**os.environ, "LTRSCHED_PLUGINS": str(plugin)})
    line = RAISING_PLUGIN.splitlines().index('            return {}["no such key"]') + 1
    assert_one_line_error(r, f"plugin code raised KeyError: 'no such key' ({plugin}:{line}, in rank)")


def test_a_bad_ray_address_is_a_one_line_error_not_a_hang(tmp_path, capsys):
    """Each refusal comes before Ray is started or joined (a closed port and a bad spelling are seen without Ray; a
    silent port by a probe in a child process, stopped at LTRSCHED_RAY_TIMEOUT), so the commands run in this process
    (run_cli_fast), whose Ray session, if any, they never reach. A hang would fail by pytest-timeout."""
    from cli_helpers import run_cli_fast

    (tmp_path / "s.toml").write_text('workloads = ["lmsys-like"]\npolicies = ["fcfs"]\nnum_requests = 20\n')
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    r = run_cli_fast(capsys, "sweep", "s.toml", "--backend", "ray", "--address", f"127.0.0.1:{port}", cwd=tmp_path)
    assert_one_line_error(r, f"--address 127.0.0.1:{port}: cannot reach a Ray cluster there (Connection refused)")

    with socket.socket() as silent:  # listens, never answers: ray.init alone would retry for ever
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        address = "127.0.0.1:%d" % silent.getsockname()[1]
        r = run_cli_fast(capsys, "reproduce", "table1", "--quick", "--backend", "ray", "--address", address,
                         cwd=tmp_path, env={**os.environ, "LTRSCHED_RAY_TIMEOUT": "4"})
        assert_one_line_error(r, f"--address {address}: no Ray cluster answered within 4 s")
    for args, message in [(["--backend", "ray", "--address", "nonsense"], "expected host:port, ray://host:port or auto"),
                          (["--address", "127.0.0.1:6379"], "--address needs --backend ray")]:
        assert_one_line_error(run_cli_fast(capsys, "sweep", "s.toml", *args, cwd=tmp_path), message)
    assert not (tmp_path / "sweep").exists() and not (tmp_path / "results").exists()  # nothing started


def test_missing_ray_is_a_one_line_error_naming_the_extra(monkeypatch):
    from ltrsched.errors import MissingDependencyError
    from ltrsched.experiments.runner import open_backend

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    with pytest.raises(MissingDependencyError, match=r"ray is not installed; install it with: pip install 'ltrsched\[ray\]'"):
        with open_backend("ray"):
            pass


def test_the_cli_and_the_process_backend_never_import_ray(tmp_path):
    """In a fresh interpreter (this one has Ray imported): each command in turn, Ray looked for after each."""
    (tmp_path / "s.toml").write_text('workloads = ["lmsys-like"]\npolicies = ["fcfs"]\nnum_requests = 20\n')
    code = ("import json, sys\nfrom ltrsched.cli import main\n"
            "for args in json.loads(sys.argv[1]):\n"
            "    try:\n        main(args)\n    except SystemExit as exc:\n"
            "        assert exc.code in (0, None), (args, exc.code)\n"
            "    assert 'ray' not in sys.modules, f'ray was imported by {args}'\n")
    commands = [["--help"], ["sweep", "--help"], ["capacity", "--help"], ["sweep", "s.toml", "--jobs", "1"]]
    r = subprocess.run([sys.executable, "-c", code, json.dumps(commands)], capture_output=True, text=True, cwd=tmp_path,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "sweep" / "sweep.csv").is_file()  # (the last command ran its sweep)


@pytest.mark.parametrize("value", ["inf", "nan", "0", "-1", "soon"])
def test_a_ray_timeout_that_is_not_a_finite_positive_number_is_refused(monkeypatch, value):
    """An infinite timeout would wait for ever on an address that listens but never answers."""
    from ltrsched.errors import UserError
    from ltrsched.experiments.ray_backend import connect_timeout

    monkeypatch.setenv("LTRSCHED_RAY_TIMEOUT", value)
    with pytest.raises(UserError, match=f"LTRSCHED_RAY_TIMEOUT must be a positive, finite number of seconds, got '{value}'"):
        connect_timeout()
