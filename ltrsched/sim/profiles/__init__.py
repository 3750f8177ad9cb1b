"""Step-time profiles: how long a simulated engine step takes, and how much KV cache fits.

    from ltrsched.sim.profiles import load_profile
    p = load_profile("a100-llama3-8b")        # or a path to a profile JSON file
    p.step_time(shape)                        # seconds for a StepShape
    p.num_gpu_blocks(block_size=16, gpu_memory_utilization=0.9)

Built-in profiles are JSON files in this package, derived by ``derive_a100`` (see PROFILES.md).
"""

from ltrsched.sim.profiles.io import (
    builtin_profiles,
    engine_block_size,
    load_profile,
    profile_from_dict,
    profile_to_dict,
    read_profile_file,
    save_profile,
)
from ltrsched.sim.profiles.model import StepTimeProfile

__all__ = [
    "StepTimeProfile",
    "builtin_profiles",
    "engine_block_size",
    "load_profile",
    "profile_from_dict",
    "profile_to_dict",
    "read_profile_file",
    "save_profile",
]
