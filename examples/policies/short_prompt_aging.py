"""Example plugin: shortest prompt first with aging — a complete policy in one small file.

Use it anywhere a policy spec goes:
    ltrsched simulate --plugin examples/policies/short_prompt_aging.py --policy short-prompt:age=0.5
The same object runs unchanged in the simulator and in the vLLM engine adapter.
"""

import math

import numpy as np

from ltrsched.policies import LiveView, Policy, register


@register
class ShortPromptAging(Policy):
    """Shortest prompt first; every second of waiting counts as ``age`` tokens less (no starvation)."""

    name = "short-prompt"

    def __init__(self, age: float = 0.5):
        if not 0 <= age < math.inf:  # (NaN too: every request's key would be NaN, silently FCFS)
            raise ValueError(f"age must be a finite number >= 0, got {age}")
        self.age = age

    def rank(self, view: LiveView) -> np.ndarray:
        waited = view.now - view.arrival_time  # seconds since arrival
        effective = view.prompt_tokens - self.age * waited
        return view.order_by(effective)  # ties by arrival, then request id
