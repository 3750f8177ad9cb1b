"""SimPy simulator of vLLM-style iteration-level serving, timed by step-time profiles."""

from ltrsched.sim.config import SimConfig
from ltrsched.sim.simulate import SimResult, simulate
from ltrsched.sim.step_shape import StepShape

__all__ = ["SimConfig", "SimResult", "StepShape", "simulate"]
