"""Policy specs given hostile values from Python: a spec that is no string is one TypeError naming the argument, as
``make_router``'s is (tests/test_api_audit_routers.py)."""

from __future__ import annotations

import pytest

from ltrsched.policies import make_policy


@pytest.mark.parametrize("spec", [None, 3, 0.5, b"fcfs", ["fcfs"], ("ltr", "tau=0.62")])
def test_a_spec_that_is_no_string_is_a_type_error_naming_it(spec):
    """Each was an AttributeError ('NoneType' object has no attribute 'strip'), naming neither the argument nor what
    it takes."""
    with pytest.raises(TypeError, match=r"^spec must be a policy spec string, e\.g\. 'ltr:tau=0\.62' "
                                        r"\(`ltrsched policies`\), got ") as exc:
        make_policy(spec)
    assert "\n" not in str(exc.value)


def test_a_string_spec_still_builds_its_policy():
    assert type(make_policy(" fcfs ")).__name__ == type(make_policy("fcfs")).__name__
