"""Training configuration and checkpoint layout of the length predictors."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ltrsched.errors import UserError

KINDS = ("rank", "class")
CONFIG_FILE = "predictor.json"
WEIGHTS_FILE = "weights.pt"


@dataclass
class PredictorConfig:
    """What a checkpoint directory holds besides its weights.

    Attributes:
        kind: "rank" (a score, higher = shorter) or "class" (a length bucket).
        backbone: "ngram" (hashed token n-grams, the fast CPU default) or "hf" (a Hugging Face
            sequence-classification model, ``hf_path``).
        loss: "pairwise" (RankNet; the default: the best held-out tau on ShareGPT, BENCHMARKS.md) or
            "listmle" (the paper's) for rank models; "ce" for class models.
        label_bucket: rank labels are ``output_tokens // label_bucket`` (paper: 10; 1 = raw lengths).
        bucket: class bucket width [tokens] (820 = the 10-bucket baseline, 100, 10, 1).
        num_classes: class count (lengths above the last bucket fall into it).
        ngrams: the n-gram backbone's features, "tokens+words" (Llama-3 token and word uni/bigrams) or
            "tokens" (token uni/bigrams only; checkpoints written before this field existed).
        dim, hidden: n-gram hash buckets (0: 2^20 for a linear ranker, 2^17 with a hidden layer) and hidden width (0 = linear; class models need a hidden layer,
            so that 8,192 one-token buckets stay small).
        list_size: prompts per ListMLE list (paper: 32).
        epochs, lr, weight_decay, seed: optimisation.
        max_prompt_tokens: prompts are truncated to this many tokens for the HF backbone (paper: 2048).
    """

    kind: str = "rank"
    backbone: str = "ngram"
    loss: str = "pairwise"
    label_bucket: int = 1
    bucket: int = 820
    num_classes: int = 10
    ngrams: str = "tokens+words"
    dim: int = 0
    hidden: int = 0
    list_size: int = 32
    epochs: int = 5
    lr: float = 1e-2
    weight_decay: float = 0.0
    seed: int = 0
    hf_path: str | None = None
    max_prompt_tokens: int = 2048
    metrics: list = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise UserError(f"unknown predictor kind {self.kind!r}; use rank or class")
        if self.bucket < 1 or self.label_bucket < 1:
            raise UserError("bucket widths must be >= 1 token")
        if self.kind == "class" and self.num_classes < 2:
            raise UserError(f"a length classifier needs at least 2 classes, got {self.num_classes} "
                            f"(a class bucket of {self.bucket} tokens: use --bucket below 8192)")
        from ltrsched.predictors.features import NGRAM_SETS

        if self.ngrams not in NGRAM_SETS:
            raise UserError(f"unknown n-gram set {self.ngrams!r}; use one of {', '.join(NGRAM_SETS)}")
        if self.kind == "class" and self.hidden == 0:
            self.hidden = 32
        if self.dim <= 0:  # linear rankers: 2^20 buckets (fewer word collisions); hidden layers: 2^17 x hidden
            self.dim = 1 << 20 if self.hidden == 0 else 1 << 17

    def save(self, directory: Path) -> None:
        from ltrsched import atomic

        atomic.write_text(Path(directory) / CONFIG_FILE, json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, directory: Path) -> "PredictorConfig":
        path = Path(directory) / CONFIG_FILE
        if not path.is_file():
            raise UserError(f"{directory} is not a predictor checkpoint (no {CONFIG_FILE}); train one with `ltrsched train`")
        try:
            data = json.loads(path.read_text())
            if not isinstance(data, dict):
                raise TypeError(f"expected a JSON object, got {type(data).__name__}")
            data.setdefault("ngrams", "tokens")  # written before word n-grams existed
            return cls(**data)
        except (json.JSONDecodeError, TypeError) as exc:
            raise UserError(f"{path}: not a valid predictor config ({exc})") from None
