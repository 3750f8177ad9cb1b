"""A policy's order is checked: a permutation of the live positions with an integer dtype (issue 12, item 3)."""

from __future__ import annotations

import itertools
import textwrap

import numpy as np
import pytest

from ltrsched.errors import UserError
from ltrsched.policies import LiveView, make_policy
from ltrsched.policies.order_check import _is_permutation, check_order
from ltrsched.sim import SimConfig, simulate
from test_cli_simulate import assert_one_line_error, run_cli

from conftest import make_workload


def view_of(n: int, step: int = 7) -> LiveView:
    return LiveView({"request_id": np.arange(n), "arrival_time": np.zeros(n)}, None, 0.0, step, arrival_ordered=True)


def test_is_permutation_is_exact_on_every_small_array():
    """Every int array of length n <= 4 with values in [-2n, 2n): accepted exactly when it is a permutation
    (negative values that wrap onto missing positions, e.g. [0, -1], included)."""
    for n in range(1, 5):
        for values in itertools.product(range(-2 * n, 2 * n), repeat=n):
            order = np.array(values, dtype=np.int64)
            assert _is_permutation(order, n) == (sorted(values) == list(range(n))), values
            assert _is_permutation(order.astype(np.int32), n) == (sorted(values) == list(range(n))), values


def test_is_permutation_on_large_random_orders():
    rng = np.random.default_rng(0)
    n = 3000
    perm = rng.permutation(n)
    assert _is_permutation(perm, n) and _is_permutation(perm.astype(np.uint32), n)
    for change in (lambda o: o.__setitem__(5, o[6]), lambda o: o.__setitem__(5, o[5] - n),
                   lambda o: o.__setitem__(5, n), lambda o: o.__setitem__(5, 10 * n)):
        bad = perm.copy()
        change(bad)
        assert not _is_permutation(bad, n)


def test_order_by_results_are_accepted_and_read_only():
    view = view_of(300)
    for keys in ((), (np.arange(300) % 7,), (np.arange(300) % 7, -np.arange(300))):
        order = view.order_by(*keys)
        assert check_order(order, view, make_policy("fcfs")) is order
        with pytest.raises(ValueError, match="read-only"):
            order[0] = 1


def test_a_changed_copy_of_order_by_is_checked():
    view = view_of(300)
    order = view.order_by(np.arange(300) % 7).copy()
    order[0] = order[1]
    with pytest.raises(UserError, match=r"policy 'fcfs' returned an invalid order at step 7: 1 position\(s\) "
                                        r"repeated \(first: \d+\), 1 missing"):
        check_order(order, view, make_policy("fcfs"))


def test_an_accepted_order_returned_again_unchanged_is_not_checked_again(monkeypatch):
    import ltrsched.policies.order_check as oc

    checks = []
    real = oc._is_permutation
    monkeypatch.setattr(oc, "_is_permutation", lambda order, n: checks.append(n) or real(order, n))
    view = view_of(300)
    kept = np.random.default_rng(0).permutation(300)
    kept.flags.writeable = False  # (a policy keeps it between steps)
    for _ in range(3):
        assert check_order(kept, view_of(300), make_policy("ltr")) is kept
    assert checks == [300]
    with pytest.raises(UserError, match="4 positions for 3 live requests"):  # not for a view of another size
        check_order(kept[:4].copy(), view_of(3), make_policy("ltr"))
    # changed behind the flag: checked again
    kept.flags.writeable = True
    kept[0] = kept[1]
    with pytest.raises(UserError, match="repeated"):
        check_order(kept, view, make_policy("ltr"))
    # a writeable order, or a read-only view of a writeable array, is checked every time
    mutable = np.arange(300)
    frozen_view = mutable[:]
    frozen_view.flags.writeable = False
    checks.clear()
    for order in (mutable, mutable, frozen_view, frozen_view):
        check_order(order, view, make_policy("ltr"))
    assert checks == [300] * 4
    mutable[0] = 1
    with pytest.raises(UserError, match="repeated"):
        check_order(frozen_view, view, make_policy("ltr"))


@pytest.mark.parametrize("spec", ["ltr:tau=0.5", "ltr:tau=0.5,starve=20,quantum=3", "mlfq"])
def test_kept_orders_are_vouched_for_and_not_checked_value_by_value(monkeypatch, spec):
    """LTR's kept order after requests finish, the same with promoted requests in front, and MLFQ's kept order
    are permutations by construction: the policies vouch for them (order_check.vouched), so the host checks
    next to none value by value (before: every step whose order changed). Each vouched order is checked to be
    a permutation here (Lockstep), and to equal the stateless reference's."""
    import ltrsched.policies.order_check as oc
    from ltrsched.workloads import load_workload
    from reference_policies import Lockstep

    checks = []
    real = oc._is_permutation
    monkeypatch.setattr(oc, "_is_permutation", lambda order, n: checks.append(n) or real(order, n))
    policy = Lockstep(make_policy(spec))
    simulate(load_workload("sharegpt", num_requests=300, seed=0), policy,
             SimConfig(profile="a100-llama3-8b", num_gpu_blocks=900))
    assert policy.steps > 300 and policy.vouched > 0.9 * policy.steps
    assert len(checks) < 0.02 * policy.steps, (len(checks), policy.steps)


def test_an_order_by_of_an_older_view_is_checked():
    old, view = view_of(4), view_of(3)
    with pytest.raises(UserError, match="4 positions for 3 live requests"):
        check_order(old.order_by(), view, make_policy("srtf"))


def test_a_list_of_positions_is_accepted():
    view = view_of(3)
    assert check_order([2, 0, 1], view, make_policy("fcfs")).tolist() == [2, 0, 1]


@pytest.mark.parametrize("kind, message", [
    ("dup", "12 positions for 6 live requests"),
    ("repeat", "1 position(s) repeated (first: 0), 1 missing (first: 5)"),
    ("empty", "0 positions for 6 live requests"),
    ("high", "1 position(s) out of range (first: 6)"),
    ("negative", "1 position(s) out of range (first: -1)"),
    ("float", "dtype float64, not an integer type"),
    ("bool", "dtype bool, not an integer type"),
    ("twod", "a 2-D array of shape (1, 6)"),
])
def test_simulator_refuses_bad_orders(kind, message):
    pol = make_policy("fcfs")
    bad = {
        "dup": lambda n: np.concatenate((np.arange(n), np.arange(n))),
        "repeat": lambda n: np.r_[np.arange(n - 1), 0],
        "empty": lambda n: np.zeros(0, dtype=np.int64),
        "high": lambda n: np.arange(1, n + 1),
        "negative": lambda n: np.arange(n) - 1,
        "float": lambda n: np.arange(n, dtype=np.float64),
        "bool": lambda n: np.ones(n, dtype=bool),
        "twod": lambda n: np.arange(n)[None, :],
    }[kind]
    pol.rank = lambda view: bad(len(view))
    wl = make_workload([10] * 6, [5] * 6)
    with pytest.raises(UserError) as err:
        simulate(wl, pol, SimConfig(profile="a100-llama3-8b"))
    assert message in str(err.value) and "policy 'fcfs'" in str(err.value) and "\n" not in str(err.value)


PLUGIN = textwrap.dedent('''
    import numpy as np
    from ltrsched.policies import LiveView, Policy, register

    @register
    class Broken(Policy):
        """Returns a broken order once there are ``after`` live requests or fewer."""
        name = "broken"

        def __init__(self, kind: str = "dup", after: int = 1000):
            self.kind, self.after = kind, after

        def rank(self, view: LiveView):
            n = len(view)
            if n > self.after:
                return view.order_by()
            return {
                "dup": lambda: np.concatenate((np.arange(n), np.arange(n))),
                "empty": lambda: np.zeros(0, dtype=np.int64),
                "range": lambda: np.arange(1, n + 1),
                "float": lambda: np.arange(n, dtype=float),
                "twod": lambda: np.arange(n)[None, :],
            }[self.kind]()
''')


@pytest.mark.parametrize("kind, message", [
    ("dup", "positions for"),
    ("empty", "0 positions for"),
    ("range", "out of range"),
    ("float", "not an integer type"),
    ("twod", "2-D array"),
])
def test_cli_plugin_with_a_bad_order_is_one_line_exit_2(tmp_path, kind, message):
    plugin = tmp_path / "broken_policy.py"
    plugin.write_text(PLUGIN)
    out = tmp_path / "out"
    r = run_cli("simulate", "-w", "sharegpt", "-n", "30", "--plugin", str(plugin), "--policy",
                f"broken:kind={kind},after=10", "--out", str(out))
    assert_one_line_error(r, message)
    assert f"policy 'broken:kind={kind},after=10' returned an invalid order at step" in r.stderr
    assert not out.exists() or not any(out.iterdir())
