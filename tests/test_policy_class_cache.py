"""What the policy registry reads of a class (its constructor's signature and type hints) is read once per class
(helper sweepfollow): ``make_policy`` and ``Policy.spec`` read it on every call, 1-2 s of a 10,000-policy sweep's
checks. A plugin class registered later, a name registered again by another class, and a class whose ``__init__`` is
replaced are read afresh."""

from __future__ import annotations

import inspect
import typing

import pytest

from ltrsched.errors import UserError
from ltrsched.plugin_scope import command_plugins
from ltrsched.policies import Policy, register
from ltrsched.policies.registry import make_policy


def _count(monkeypatch) -> list[str]:
    calls: list[str] = []
    signature, hints = inspect.signature, typing.get_type_hints
    monkeypatch.setattr(inspect, "signature", lambda *a, **k: calls.append("signature") or signature(*a, **k))
    monkeypatch.setattr(typing, "get_type_hints", lambda *a, **k: calls.append("hints") or hints(*a, **k))
    return calls


def test_building_a_policy_again_reads_its_class_no_more(monkeypatch):
    make_policy("ltr:tau=0.5").spec()  # (read once here, or earlier in this process)
    calls = _count(monkeypatch)
    specs = [make_policy(f"ltr:tau={0.5 + i / 100}").spec() for i in range(20)]
    assert specs == [make_policy(s).spec() for s in specs]  # the same policies
    assert calls == []


def test_the_same_errors_as_before():
    with pytest.raises(UserError, match="policy 'ltr' has no parameter 'nope'; usage: ltr:"):
        make_policy("ltr:nope=1")
    with pytest.raises(UserError, match="policy 'ltr': bad value for tau: 'x' is not a number"):
        make_policy("ltr:tau=x")


def _plugin(width_type: type, default):
    class CacheProbe(Policy):
        """A plugin class, registered in a command."""
        name = "cache-probe"

        def __init__(self, width: width_type = default):
            self.width = width

        def rank(self, view):
            return view.order_by()
    CacheProbe.__init__.__annotations__ = {"width": width_type}
    return CacheProbe


def test_a_name_registered_again_by_another_class_is_read_afresh():
    with command_plugins():
        register(_plugin(int, 1))
        assert make_policy("cache-probe:width=3").spec() == "cache-probe:width=3"
        with pytest.raises(UserError, match="bad value for width: '0.5' is not a whole number"):
            make_policy("cache-probe:width=0.5")
        register(_plugin(float, 1.0))  # (the same module and name: a reloaded plugin)
        assert make_policy("cache-probe:width=0.5").spec() == "cache-probe:width=0.5"
    with pytest.raises(UserError, match="unknown policy 'cache-probe'"):
        make_policy("cache-probe")


def test_a_class_whose_init_is_replaced_is_read_afresh():
    with command_plugins():
        cls = register(_plugin(int, 1))
        assert make_policy("cache-probe:width=2").spec() == "cache-probe:width=2"

        def __init__(self, depth: int = 4):
            self.depth = depth
        cls.__init__ = __init__
        assert make_policy("cache-probe:depth=5").spec() == "cache-probe:depth=5"
        with pytest.raises(UserError, match="has no parameter 'width'"):
            make_policy("cache-probe:width=2")


def test_a_routers_spec_reads_its_class_once(monkeypatch):
    """A router's ``parameters()`` (its ``spec()``, ``describe()``) read its constructor's signature on every call."""
    from ltrsched.routers import make_router

    router = make_router("least-work:tau=0.6")
    spec = router.spec()
    calls = _count(monkeypatch)
    assert [router.spec() for _ in range(20)] == [spec] * 20
    assert router.describe() == {"router": "least-work", **router.parameters()}
    assert calls == []
