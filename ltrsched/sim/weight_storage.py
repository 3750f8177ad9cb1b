"""How a quantized checkpoint keeps its decoder's linear weights in memory under vLLM 0.32 (bits an element, scales
and zero points per group), read from its quantization config, for the weight estimate beside a profile's KV capacity
(:mod:`ltrsched.sim.kv_capacity`). Units: bits, elements, bytes.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class WeightStorage:
    """How a quantized checkpoint's decoder linear weights (attention projections, MLPs, experts) are kept in memory by
    vLLM 0.32 [bits, elements, bytes]; the embedding, the LM head, norms, biases, routers and gates stay at the model's
    dtype, as vLLM's models build them.

    Attributes:
        method: the quantization's ``quant_method`` as vLLM reads it (:func:`ltrsched.models.quant_method`).
        bits: bits one weight element takes (packed: GPTQ's and AWQ's int32 words, NVFP4's two to a byte).
        group_size: input elements sharing one scale (and zero point), or None where the scales are per output
            channel, per tensor or per 128x128 block: counted as nothing (under 0.03% of the weights).
        group_bytes: bytes of a group's scale and zero point, for each output channel.
    """

    method: str
    bits: int
    group_size: int | None = None
    group_bytes: float = 0.0

    def bytes_of(self, elements: int) -> int:
        """Bytes ``elements`` linear weight elements take, with their groups' scales and zero points [bytes]."""
        groups = elements // self.group_size if self.group_size else 0
        return math.ceil(elements * self.bits / 8 + groups * self.group_bytes)


#: Entries of a quantization's list of modules kept unquantized that name no decoder linear layer counted as quantized
#: (the LM head, a vision tower or projector, an MoE router or shared-expert gate: kept at the dtype here anyway).
_UNQUANTIZED_ELSEWHERE = re.compile(r"lm_head|visual|vision|projector|router|(^|[.:_])gate\$?$")
#: The keys a quantization config lists its unquantized modules under (GPTQ's ``dynamic`` negative matches aside).
_NOT_CONVERTED_KEYS = ("modules_to_not_convert", "ignored_layers", "ignore", "exclude_modules")


def _refuse_weights(source: str, method: str, why: str) -> str:
    """The one-line refusal of the weight estimate of a model quantized by ``method`` (``why``: in words)."""
    return (f"{source}: the weight estimate of a model quantized by {method!r} ({why}) would be wrong, so the "
            "simulator cannot size this model's memory")


def weight_storage(quant: Any, dtype_bytes: int, source: str) -> WeightStorage | str | None:
    """How vLLM 0.32 stores the decoder's linear weights of a model whose quantization config is ``quant``
    (:func:`ltrsched.models.layers_quantization_config`: config.json's ``quantization_config``, else
    hf_quant_config.json's, else a composite model's ``text_config`` one, else ``compression_config``; None: none)
    served at ``dtype_bytes`` bytes an element: None where they stay at it, a :class:`WeightStorage`, or the one-line
    refusal naming ``source`` (a string: raised only where weights are estimated) where ltrsched cannot count them.
    Read from vLLM's ``create_weights`` of each method:

    * ``gptq`` (4 or 8 ``bits``, symmetric), ``awq`` (4 ``w_bit``/``bits``): packed weights, and per group of
      ``group_size`` inputs and output channel a scale at the served dtype and packed zero point (``group_size`` -1:
      one group per channel, counted as nothing);
    * ``fp8``, ModelOpt's FP8 (its ``quant_algo`` FP8, FP8_PER_CHANNEL_PER_TOKEN, FP8_PB_WO): one byte, scales per
      tensor, channel or 128x128 block;
    * ModelOpt's NVFP4 (``quant_algo`` NVFP4): 4 bits and an FP8 scale per ``group_size`` (16) inputs;
    * ``compressed-tensors`` with one weight scheme for every ``Linear``: its ``num_bits``, and for the ``group``
      strategies a scale per group (one byte for a 4-bit float, NVFP4; else the served dtype's, and a packed zero
      point where not symmetric).

    Refused: bitsandbytes (vLLM 0.32 has no such method: it refuses the model at its start), GPTQ's per-module
    ``dynamic`` and a quantized LM head, a list of unquantized modules naming decoder layers, a compressed-tensors
    config of several schemes or a sparse format, and every other method."""
    from ltrsched.models import MODELOPT_QUANT_METHODS, quant_method

    method = quant_method(quant, source)
    if not method:
        return None
    inner = quant.get("quantization")
    for where in (quant, inner) if isinstance(inner, dict) else (quant,):
        for key in _NOT_CONVERTED_KEYS:
            kept = where.get(key)
            if kept and (not isinstance(kept, list)
                         or not all(isinstance(e, str) and _UNQUANTIZED_ELSEWHERE.search(e) for e in kept)):
                return _refuse_weights(source, method, f"its {key!r} keeps decoder layers unquantized: {kept!r}")
    if method in ("gptq", "awq"):
        bits = quant.get("bits") if method == "gptq" else quant.get("w_bit", quant.get("bits"))
        group = quant.get("group_size") if method == "gptq" else quant.get("q_group_size", quant.get("group_size"))
        supported = (4, 8) if method == "gptq" else (4,)
        if isinstance(bits, bool) or bits not in supported or method == "gptq" and quant.get("sym", True) is not True:
            served = " or ".join(map(str, supported))
            return _refuse_weights(source, method, f"bits {bits!r}: vLLM 0.32 serves {served}-bit"
                                                   f"{' symmetric' if method == 'gptq' else ''} weights only")
        if isinstance(group, bool) or not isinstance(group, int) or group < 1 and group != -1:
            return _refuse_weights(source, method, f"group_size {group!r} is no positive integer or -1")
        if quant.get("lm_head") or quant.get("dynamic"):
            return _refuse_weights(source, method, "a quantized LM head or per-module 'dynamic' settings")
        return WeightStorage(method, bits, None if group == -1 else group, dtype_bytes + bits / 8)
    if method == "fp8":
        return WeightStorage(method, 8)
    if method in ("modelopt", "modelopt_fp4"):  # (by its quant_algo, as vLLM's ModelOpt configs read it)
        inner = quant.get("quantization") if isinstance(quant.get("quantization"), dict) else quant
        algo = str(inner.get("quant_algo", quant.get("quant_algo"))).upper()
        if algo in MODELOPT_QUANT_METHODS and MODELOPT_QUANT_METHODS[algo] == "modelopt":
            return WeightStorage(method, 8)
        if algo != "NVFP4":
            return _refuse_weights(source, method, f"quant_algo {algo!r}, neither FP8 nor NVFP4")
        group = inner.get("group_size", quant.get("group_size")) or 16
        if isinstance(group, bool) or not isinstance(group, int) or group < 1:
            return _refuse_weights(source, method, f"group_size {group!r} is no positive integer")
        return WeightStorage(method, 4, group, 1)
    if method == "compressed-tensors":
        return _compressed_tensors_storage(quant, dtype_bytes, method, source)
    if method == "bitsandbytes":
        return _refuse_weights(source, method, "vLLM 0.32 has no bitsandbytes quantization: it refuses the model at "
                                               "its start")
    return _refuse_weights(source, method, "a method whose stored weights ltrsched does not count")


def _compressed_tensors_storage(quant: dict, dtype_bytes: int, method: str, source: str) -> WeightStorage | str:
    """:func:`weight_storage` of a compressed-tensors config: one weight scheme for every ``Linear`` layer."""
    groups = quant.get("config_groups")
    if not isinstance(groups, dict) or not groups:
        return _refuse_weights(source, method, "no 'config_groups' object")
    schemes = [g.get("weights") if isinstance(g, dict) else None for g in groups.values()]
    targets = [g.get("targets") if isinstance(g, dict) else None for g in groups.values()]
    if len(schemes) != 1 or targets[0] != ["Linear"] or not isinstance(schemes[0], dict):
        return _refuse_weights(source, method, "not one weight scheme for every Linear layer")
    if "sparse" in str(quant.get("format", "")) or "24" in str(quant.get("format", "")):
        return _refuse_weights(source, method, f"its sparse format {quant.get('format')!r}")
    weights = schemes[0]
    bits, kind, strategy = weights.get("num_bits"), weights.get("type"), weights.get("strategy")
    if isinstance(bits, bool) or bits not in (4, 8) or kind not in ("int", "float"):
        return _refuse_weights(source, method, f"weights of {bits!r} bits of type {kind!r}")
    if strategy not in ("group", "tensor_group"):
        return WeightStorage(method, bits)  # (per tensor, channel or block)
    group = weights.get("group_size")
    if isinstance(group, bool) or not isinstance(group, int) or group < 1:
        return _refuse_weights(source, method, f"group_size {group!r} is no positive integer")
    if kind == "float":  # (NVFP4: an FP8 scale per group)
        return WeightStorage(method, bits, group, 1)
    return WeightStorage(method, bits, group, dtype_bytes + (0 if weights.get("symmetric", True) else bits / 8))
