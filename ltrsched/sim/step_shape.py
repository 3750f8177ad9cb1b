"""Re-export: the step shape lives with the batch rules (``ltrsched.policies.step_shape``), since the engine
adapter logs it too."""

from ltrsched.policies.step_shape import StepShape, batch_step_shape

__all__ = ["StepShape", "batch_step_shape"]
