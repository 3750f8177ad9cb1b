"""Which decoder layers of a model keep KV for the whole context and which for a sliding window, and the longest
context one request may have in a KV cache of a stated size, as vLLM 0.32 plans its KV cache at its start.

vLLM reads which layers slide from the text model's ``layer_types`` as transformers' config class builds it (Gemma-2
alternates, Gemma-3 and Cohere-2 slide 5 of 6, Qwen2/3 slide the layers from ``max_window_layers`` on); a model
whose config class builds none (Mistral, Phi-3, Llama) slides every layer when it has a window (vLLM's
``CacheConfig.sliding_window``). Its KV cache manager then puts layers of one kind into groups of equal size (its
``_get_kv_cache_groups_uniform_page_size``: the smaller count, or the larger where it is under 1.5 times the
smaller, the last group padded); a block of the shared pool holds ``block_size`` tokens of one group's layers, and
one request takes blocks in every group: ``ceil(L / block_size)`` in a full-attention group, and in a sliding group
``ceil(min(window - 1 + in-flight tokens, L) / block_size) + 1`` (``SlidingWindowSpec.max_admission_blocks_per_
request``: the window may start mid-block). vLLM refuses at its start a context whose one request needs more than
the pool's blocks less its null block (``check_enough_kv_cache_memory``).

Units: tokens, blocks (of ``block_size`` tokens), bytes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from ltrsched.hf_quiet import transformers_quiet

FULL, SLIDING = "full_attention", "sliding_attention"


@dataclass(frozen=True)
class KVLayout:
    """The KV-cache kinds of a model's decoder layers.

    Attributes:
        full: layers that keep KV for the whole context.
        sliding: layers that keep KV for the last ``window`` tokens.
        window: the sliding window [tokens]; None when no layer slides.
        known: False where the config does not tell which of its layers slide (a window, and ``layer_types`` of
            other kinds, or a config transformers cannot build): the bound is then taken over every layer sliding
            and every layer attending fully, the smaller of the two.
        class_decides: True where ``layer_types`` mixes both kinds: a model class that reads them slides the
            sliding ones, one that does not attends fully on every layer; the bound is the smaller of the two.
    """

    full: int
    sliding: int
    window: int | None = None
    known: bool = True
    class_decides: bool = False

    @property
    def layers(self) -> int:
        """All decoder layers."""
        return self.full + self.sliding


def _layer_types(text: dict) -> list | None:
    """The text model's ``layer_types`` as vLLM reads them: the config.json's own, else the list transformers' config
    class builds (None where it builds none); raises ValueError where the class cannot be built."""
    if text.get("layer_types") is not None:
        return text["layer_types"]
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    from transformers import PretrainedConfig

    try:
        config_class = CONFIG_MAPPING[text.get("model_type")]
        # (a composite model's text_config without its own model_type: the class its composite class builds it with)
        sub = (getattr(config_class, "sub_configs", None) or {}).get("text_config")
        if sub is not None:
            if not (isinstance(sub, type) and issubclass(sub, PretrainedConfig)):
                raise ValueError(f"the text config class of {text.get('model_type')!r} depends on its values")
            config_class = sub
        with transformers_quiet():
            built = config_class(**{k: v for k, v in text.items() if k != "model_type"})
    except Exception as exc:  # (any error of a config class built from hostile values)
        raise ValueError(str(exc)) from None
    return getattr(built, "layer_types", None)


def kv_layout(model: dict) -> KVLayout | None:
    """The :class:`KVLayout` of the model whose config.json is ``model``; None where its text model or layer count
    cannot be read (the engine's own checks then refuse it)."""
    from ltrsched.engine.model_context import sliding_window, text_config
    from ltrsched.errors import UserError
    from ltrsched.models import layer_count

    try:
        text, _ = text_config(model)
        layers = layer_count(model, "config.json")
    except UserError:
        return None
    window = sliding_window(model)
    if window is None:
        return KVLayout(full=layers, sliding=0)
    unknown = KVLayout(full=layers, sliding=0, window=window, known=False)
    try:
        kinds = _layer_types(text)
    except (ValueError, ImportError):
        return unknown
    if kinds is None:  # (vLLM's CacheConfig.sliding_window: every layer slides)
        return KVLayout(full=0, sliding=layers, window=window)
    if not isinstance(kinds, list) or len(kinds) < layers or not set(kinds[:layers]) <= {FULL, SLIDING}:
        return unknown
    sliding = kinds[:layers].count(SLIDING)
    if sliding == 0:
        return KVLayout(full=layers, sliding=0)
    return KVLayout(full=layers - sliding, sliding=sliding, window=window, class_decides=sliding < layers)


def group_size(layout: KVLayout) -> int:
    """Layers in each of vLLM's KV-cache groups (a block of its pool holds ``block_size`` tokens of one group)."""
    counts = [n for n in (layout.full, layout.sliding) if n]
    small, large = min(counts), max(counts)
    return large if large < small * 1.5 else small


def blocks_needed(layout: KVLayout, tokens: int, block_size: int, in_flight: int) -> int:
    """Pool blocks one request of ``tokens`` tokens takes (vLLM's count at its start), ``in_flight`` the tokens a
    step may schedule (``max_num_batched_tokens`` without async scheduling)."""
    size = group_size(layout)
    full_groups, sliding_groups = -(-layout.full // size), -(-layout.sliding // size)
    blocks = full_groups * -(-tokens // block_size)
    if sliding_groups:
        held = min(layout.window - 1 + in_flight, tokens)
        blocks += sliding_groups * (-(-held // block_size) + 1)
    return blocks


def block_bytes(layout: KVLayout, block_size: int, layer_bytes_per_token: int) -> int:
    """Bytes one block of vLLM's pool takes [bytes]: ``block_size`` tokens of one KV group's layers (its
    ``_get_kv_cache_bytes_per_block``; ``layer_bytes_per_token``: one layer's keys and values of one token). A model
    mixing full-attention and sliding-window layers in groups of half its layers takes half the bytes of one whose
    every layer is in one group."""
    return group_size(layout) * block_size * layer_bytes_per_token


def pool_blocks(layout: KVLayout, block_size: int, layer_bytes_per_token: int, memory_bytes: int) -> int:
    """Blocks of the pool that ``memory_bytes`` of KV cache holds (``layer_bytes_per_token``: one layer's keys and
    values of one token)."""
    return memory_bytes // block_bytes(layout, block_size, layer_bytes_per_token)


def bounded_context(layout: KVLayout, blocks: int, block_size: int, in_flight: int, context: int) -> int | None:
    """The longest context [tokens], at most ``context``, whose one request a pool of ``blocks`` blocks (vLLM's null
    block among them) admits; None where ``context`` itself fits."""
    usable = blocks - 1
    if blocks_needed(layout, context, block_size, in_flight) <= usable:
        return None
    low, high = 0, context  # (blocks_needed never falls as the context grows)
    while low < high:
        mid = (low + high + 1) // 2
        if blocks_needed(layout, mid, block_size, in_flight) <= usable:
            low = mid
        else:
            high = mid - 1
    return low


def alternatives(layout: KVLayout) -> list[KVLayout]:
    """The layouts vLLM may plan for ``layout``: itself where the config tells it; else each of those it may be (the
    caller takes the smallest bound over them)."""
    every_full = KVLayout(full=layout.layers, sliding=0)
    if not layout.known:
        return [KVLayout(full=0, sliding=layout.layers, window=layout.window), every_full]
    if layout.class_decides:
        return [layout, every_full]
    return [layout]


#: How a vLLM model module names the architecture of the language model it builds (a composite model's:
#: ``init_vllm_registered_model(..., architectures=["Gemma3ForCausalLM"])``).
_LANGUAGE_MODEL = re.compile(r'architectures=\[\s*"(\w+)"')


def reads_layer_types(model: dict) -> bool:
    """Whether the installed vLLM's model module for the config.json ``model``'s ``architectures`` reads
    ``layer_types`` (its per-layer sliding window: Gemma-2/3, Cohere-2, Llama), or, a composite model's, the module
    of the language model it builds by name does; read from their source, not imported. False where there is none,
    or it does not name them (a module that takes its layers from another: the caller then keeps both of
    :func:`alternatives`)."""
    from ltrsched.architectures import model_source

    source = model_source(model.get("architectures"))
    if source is None:
        return False
    if "layer_types" in source:
        return True
    inner = [model_source([name]) for name in _LANGUAGE_MODEL.findall(source)]
    return any(text is not None and "layer_types" in text for text in inner)


def planned(layout: KVLayout, model: dict) -> list[KVLayout]:
    """The layouts vLLM may plan for the config.json ``model`` whose layout is ``layout``: :func:`alternatives`, but
    only ``layout`` itself (decided: ``class_decides`` False) where its layer types mix both kinds and vLLM's model
    reads them (:func:`reads_layer_types`)."""
    if layout.known and layout.class_decides and reads_layer_types(model):
        return [replace(layout, class_decides=False)]
    return alternatives(layout)


def held_in_words(layout: KVLayout) -> str:
    """How a request of the bounded context takes its blocks under ``layout`` (the bound's reason, in words)."""
    if not layout.known:
        return (f"one of them vLLM's null block, counted for a model with a {layout.window}-token sliding window as "
                "if every layer slid (one block more per request, the window may start mid-block) or attended to "
                "the whole context, whichever bounds it more: its config does not tell which layers slide")
    if layout.sliding == 0:
        return "one of them vLLM's null block"
    if layout.full == 0:
        return (f"one of them vLLM's null block, and one more per request as vLLM counts a layer with the model's "
                f"{layout.window}-token sliding window, which may start mid-block")
    words = (f"one of them vLLM's null block; each holds one of vLLM's KV groups of {group_size(layout)} layers "
             f"({layout.full} attending to the whole context, {layout.sliding} with the model's {layout.window}-token "
             "sliding window, one block more per request as it may start mid-block), and a request takes blocks in "
             "every group")
    if layout.class_decides:
        words += ("; or, where the model's class does not read layer_types, every layer attends to the whole "
                  "context: the smaller bound of the two")
    return words


#: Model types whose vLLM 0.32 model (its ``Qwen2Model``) refuses layer types that mix kinds unless
#: ``max_window_layers`` is the layer count ("Sliding window for some but all layers is not supported").
UNIFORM_LAYER_MODEL_TYPES = ("qwen2", "qwen3")


def check_layer_types(model: dict, source: str) -> None:
    """One-line :class:`UserError` naming ``source`` for a model whose layer types vLLM refuses once started: a
    Qwen2/Qwen3 whose layers (as transformers builds ``layer_types``: sliding from ``max_window_layers`` on, where
    ``use_sliding_window`` is set) mix sliding and full attention; an AssertionError traceback after loading."""
    from ltrsched.engine.model_context import text_config
    from ltrsched.errors import UserError

    try:
        text, prefix = text_config(model, source)
    except UserError:
        return  # (the context and size checks name it)
    if text.get("model_type") not in UNIFORM_LAYER_MODEL_TYPES:
        return
    try:
        kinds = _layer_types(text)
    except (ValueError, ImportError):
        return
    if not isinstance(kinds, list) or len(set(map(str, kinds))) <= 1:
        return
    layers, window_layers = text.get("num_hidden_layers"), text.get("max_window_layers")
    if window_layers == layers:
        return
    raise UserError(f"{source}: its layers mix {' and '.join(sorted(set(map(str, kinds))))} "
                    f"({prefix}max_window_layers {window_layers!r} of {prefix}num_hidden_layers {layers!r} attend "
                    f"fully, as transformers reads use_sliding_window), which vLLM's {text['model_type']} model refuses "
                    "once started (\"Sliding window for some but all layers is not supported\"): set "
                    f"{prefix}max_window_layers to {prefix}num_hidden_layers, or use_sliding_window to false")
