"""SimConfig's integer settings take integers only (a float budget ran as a fractional budget, True as 1), and each
interface that builds one names the setting as its user wrote it."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from ltrsched.errors import UserError
from ltrsched.experiments.commands import SWEEP_KEYS
from ltrsched.policies import make_policy
from ltrsched.sim import SimConfig, simulate
from ltrsched.sim.commands import build_config
from ltrsched.sim.config import INTEGER_FIELDS, ConfigError, key_naming
from cli_helpers import assert_one_line_error, run_cli_fast
from conftest import make_workload


@pytest.mark.parametrize("field", INTEGER_FIELDS)
@pytest.mark.parametrize("value", [7.5, 512.0, True, False, "8", np.float64(16.0)])
def test_a_non_integer_count_is_refused_naming_the_field(field, value):
    with pytest.raises(ConfigError, match=f"^{re.escape(f'{field} must be an integer, got {value!r}')}$"):
        SimConfig(**{field: value})


@pytest.mark.parametrize("field", ["max_num_batched_tokens", "max_num_seqs", "block_size"])
def test_none_for_a_count_without_a_none_default_is_refused(field):
    # (it was a TypeError from `None <= 0`, or from the simulator's first comparison)
    with pytest.raises(ConfigError, match=f"^{field} must be an integer, got None$"):
        SimConfig(**{field: None})


def test_numpy_integers_and_optional_nones_are_taken():
    config = SimConfig(max_num_batched_tokens=np.int64(512), max_num_seqs=np.int32(8), block_size=np.uint16(16),
                       num_gpu_blocks=np.int64(400), max_model_len=np.int64(4096), max_resident_seqs=np.int64(8))
    # kept as Python integers: a uint16 block size overflowed the simulator's block bytes (an OverflowError)
    assert all(type(getattr(config, f)) is int for f in INTEGER_FIELDS), config
    assert json.loads(json.dumps(config.describe()))["block_size"] == 16
    assert SimConfig(num_gpu_blocks=None, max_model_len=None, max_resident_seqs=None).num_gpu_blocks is None
    wl = make_workload([100, 300, 50], [20, 40, 10])
    assert simulate(wl, make_policy("fcfs"), config).summary["num_finished"] == 3


def test_a_fractional_budget_no_longer_runs():
    # the run that was possible: a 7.5-token budget per step, every request served
    wl = make_workload([100, 300, 50], [20, 40, 10])
    with pytest.raises(ConfigError, match="max_num_batched_tokens must be an integer, got 7.5"):
        simulate(wl, make_policy("fcfs"), SimConfig(max_num_batched_tokens=7.5))


def test_simulate_options_and_sweep_keys_name_the_setting_as_written():
    with pytest.raises(UserError, match=r"^--max-num-seqs must be an integer, got 7\.5$"):
        build_config("a100-llama3-8b", 768, 7.5, None, 0.9, None, "paper", None, None, True)
    with pytest.raises(ConfigError) as exc:
        SimConfig(max_num_batched_tokens=True)
    assert exc.value.render(key_naming(SWEEP_KEYS)) == "'max_num_batched_tokens' must be an integer, got True"


@pytest.mark.parametrize("text, message", [
    ("max_num_seqs = 7.5\n", "'max_num_seqs' must be an integer, got 7.5"),
    ("max_num_batched_tokens = true\n", "'max_num_batched_tokens' must be an integer, got True"),
])
def test_a_sweep_file_refuses_a_non_integer_in_its_own_words(capsys, tmp_path, text, message):
    (tmp_path / "s.toml").write_text('policies = ["fcfs"]\n' + text)
    r = run_cli_fast(capsys, "sweep", str(tmp_path / "s.toml"), "--out", str(tmp_path / "out"))
    assert_one_line_error(r, f"{tmp_path / 's.toml'}: {message}")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("option", ["--max-num-seqs", "--max-num-batched-tokens"])
def test_capacity_refuses_a_non_integer_in_its_own_words(capsys, tmp_path, option):
    r = run_cli_fast(capsys, "capacity", option, "7.5", "--out", str(tmp_path / "out"))
    assert_one_line_error(r, f"Invalid value for '{option}': '7.5' is not a valid integer")


@pytest.mark.parametrize("name, value", [("watermark", "0.1"), ("stop_time", "5"), ("gpu_memory_utilization", True),
                                         ("swap_space_gib", True), ("swap_space_gib", [4])])
def test_a_number_setting_that_is_no_number_is_one_line(name, value):
    """A decimal setting given as text or a bool: "0.1" was a TypeError at the range check, True was taken as 1.0."""
    with pytest.raises(ConfigError, match=f"^{name} must be a number, got "):
        SimConfig(**{name: value})


@pytest.mark.parametrize("name, value", [("chunked_prefill", "no"), ("record_steps", 1), ("chunked_prefill", None)])
def test_a_flag_setting_that_is_no_bool_is_one_line(name, value):
    """``chunked_prefill="no"`` ran with chunked prefill (any value was taken as true or false)."""
    with pytest.raises(ConfigError, match=f"^{name} must be true or false, got "):
        SimConfig(**{name: value})


def test_numpy_numbers_and_bools_are_taken_as_pythons():
    config = SimConfig(swap_space_gib=np.float32(2), stop_time=np.float64(5), chunked_prefill=np.False_)
    assert config.chunked_prefill is False and type(config.swap_space_gib) is float
    json.dumps(config.describe())


def test_preemption_defaults_follow_the_semantics_as_the_cli_does():
    """``SimConfig(semantics="vllm-v1")`` was refused (Python's default was swap, which vllm-v1 does not take), where
    ``simulate --semantics vllm-v1`` picks recompute by itself; a stated swap is still refused."""
    from ltrsched.sim import SimConfig
    from ltrsched.sim.config import ConfigError

    assert SimConfig().preemption == "swap"
    assert SimConfig(semantics="vllm-v1").preemption == "recompute"
    assert SimConfig(preemption="recompute").preemption == "recompute"
    with pytest.raises(ConfigError, match="preempts by recompute"):
        SimConfig(semantics="vllm-v1", preemption="swap")
