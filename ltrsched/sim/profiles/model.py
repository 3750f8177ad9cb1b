"""The step-time profile: how long one engine step takes, and how much KV cache the GPU holds.

Step time of a batch (see :class:`ltrsched.sim.step_shape.StepShape`) [s]::

    non_attention(num_tokens)                          # table: GEMMs, norms, embedding, TP all-reduces
  + sampling(num_seqs)                                 # table: LM head, logits gather, sampler
  + decode_attention_s_per_kv_token * decode_context_tokens   # memory-bound paged attention
  + prefill_attention_s_per_pair * prefill_attention_pairs    # compute-bound causal attention
  + overhead_s_per_step + overhead_s_per_seq * num_seqs       # CPU: scheduling, input prep, outputs

Tables are linear between points and extended by their last slope. The same form fits a profile
measured on a real engine: time prefill-only steps at several sizes for the tables, decode steps at
several context lengths for the attention coefficient (see PROFILES.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from ltrsched.policies.step_shape import MIN_STEP_S  # noqa: F401  (the profiles' floor, imported from here)
from ltrsched.sim.kv_capacity import ModelShape, kv_blocks_from_config, kv_bytes_per_token
from ltrsched.sim.profiles.interp import PiecewiseLinear
from ltrsched.sim.step_shape import StepShape



@dataclass(frozen=True)
class StepTimeProfile:
    """Step-time model and memory facts of one GPU/model/TP setup. Immutable.

    Attributes:
        name: short identifier, e.g. ``a100-llama3-8b``.
        description: one line (where the numbers come from, PROVISIONAL if unmeasured).
        gpu: GPU product name.
        model: served model (Hugging Face id).
        tensor_parallel: GPUs sharing the model (tensor parallelism).
        max_model_len: longest prompt + output a request may have [tokens].
        gpu_memory_bytes: memory of one GPU as CUDA reports it [bytes].
        activation_reserve_bytes: per-GPU memory for activations and non-torch allocations [bytes].
        host_link_bytes_per_s: GPU<->host bandwidth for KV swap, per GPU [bytes/s].
        non_attention_num_tokens: table x: tokens in the step [tokens], strictly increasing.
        non_attention_s: table y: time of everything but attention and sampling [s], non-decreasing.
        sampling_num_seqs: table x: sequences sampling a token [sequences], strictly increasing.
        sampling_s: table y: LM head + logits gather + sampler time [s], non-decreasing.
        decode_attention_s_per_kv_token: decode attention time per KV token read [s/token].
        prefill_attention_s_per_pair: prefill attention time per causal query-key pair [s/pair].
        overhead_s_per_step: fixed CPU time per step not hidden behind the GPU [s].
        overhead_s_per_seq: CPU time per scheduled sequence [s/sequence].
        model_config: the model's HF-style config (sizes for KV and weight memory).
        provenance: free-form record of sources and constants (not used in computation).
    """

    name: str
    description: str
    gpu: str
    model: str
    tensor_parallel: int
    max_model_len: int
    gpu_memory_bytes: int
    activation_reserve_bytes: int
    host_link_bytes_per_s: float
    non_attention_num_tokens: tuple[float, ...]
    non_attention_s: tuple[float, ...]
    sampling_num_seqs: tuple[float, ...]
    sampling_s: tuple[float, ...]
    decode_attention_s_per_kv_token: float
    prefill_attention_s_per_pair: float
    overhead_s_per_step: float
    overhead_s_per_seq: float
    model_config: Mapping[str, Any]
    provenance: Mapping[str, Any] = field(default_factory=dict)
    _non_attention: PiecewiseLinear = field(init=False, repr=False, compare=False)
    _sampling: PiecewiseLinear = field(init=False, repr=False, compare=False)
    _model_shape: ModelShape = field(init=False, repr=False, compare=False)
    _kv_bytes_per_token: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "_non_attention", PiecewiseLinear(self.non_attention_num_tokens, self.non_attention_s))
        set_(self, "_sampling", PiecewiseLinear(self.sampling_num_seqs, self.sampling_s))
        shape = ModelShape.from_config(self.model_config, source=f"profile {self.name!r}")
        set_(self, "_model_shape", shape)
        set_(self, "_kv_bytes_per_token", kv_bytes_per_token(shape, self.tensor_parallel))

    def __hash__(self) -> int:  # fields hold dicts; hash what identifies the timing model
        return hash((self.name, self.tensor_parallel, self.non_attention_s, self.sampling_s,
                     self.decode_attention_s_per_kv_token, self.prefill_attention_s_per_pair))

    # ------------------------------------------------------------------ time
    def step_time(self, shape: StepShape) -> float:
        """Duration of one engine step [s], CPU overhead included."""
        num_tokens = shape.num_prefill_tokens + shape.num_decode_seqs
        if num_tokens <= 0:
            return self.overhead_s_per_step
        num_seqs = shape.num_prefill_seqs + shape.num_decode_seqs
        return (self._non_attention(num_tokens)
                + self._sampling(num_seqs)
                + self.decode_attention_s_per_kv_token * shape.decode_context_tokens
                + self.prefill_attention_s_per_pair * shape.prefill_attention_pairs
                + self.overhead_s_per_step
                + self.overhead_s_per_seq * num_seqs)

    def scaled(self, factor: float) -> "StepTimeProfile":
        """This profile with every step ``factor`` times as long (all time terms multiplied; memory unchanged):
        the same model on a machine that runs ``1 / factor`` times as fast."""
        if not (factor > 0 and factor < float("inf")):
            raise ValueError(f"a profile's speed factor must be positive and finite, got {factor}")
        from dataclasses import replace

        times = {name: tuple(x * factor for x in getattr(self, name)) for name in ("non_attention_s", "sampling_s")}
        for name in ("decode_attention_s_per_kv_token", "prefill_attention_s_per_pair", "overhead_s_per_step",
                     "overhead_s_per_seq"):
            times[name] = getattr(self, name) * factor
        return replace(self, name=f"{self.name}x{factor:.4g}", **times)

    def breakdown(self, shape: StepShape) -> dict[str, float]:
        """The terms of :meth:`step_time` by name [s] (for reports and debugging)."""
        num_tokens = shape.num_prefill_tokens + shape.num_decode_seqs
        num_seqs = shape.num_prefill_seqs + shape.num_decode_seqs
        busy = num_tokens > 0
        return {
            "non_attention_s": self._non_attention(num_tokens) if busy else 0.0,
            "sampling_s": self._sampling(num_seqs) if busy else 0.0,
            "decode_attention_s": self.decode_attention_s_per_kv_token * shape.decode_context_tokens,
            "prefill_attention_s": self.prefill_attention_s_per_pair * shape.prefill_attention_pairs,
            "overhead_s": self.overhead_s_per_step + (self.overhead_s_per_seq * num_seqs if busy else 0.0),
        }

    # ------------------------------------------------------------------ memory
    @property
    def kv_bytes_per_token(self) -> int:
        """KV cache of one token on one GPU, all layers [bytes/token]."""
        return self._kv_bytes_per_token

    @property
    def model_shape(self) -> ModelShape:
        return self._model_shape

    def num_gpu_blocks(self, block_size: int = 16, gpu_memory_utilization: float = 0.9) -> int:
        """KV blocks of ``block_size`` tokens per GPU left after weights and the activation reserve."""
        return kv_blocks_from_config(self._model_shape, self.gpu_memory_bytes, self.tensor_parallel,
                                     gpu_memory_utilization, block_size, self.activation_reserve_bytes)
