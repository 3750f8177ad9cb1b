"""What a set of labels depends on: the served model (by content), the sampling settings of each run and the
prompts (the built-in ShareGPT, or a prompts file by content).

A part directory records the settings it was made with; a rerun with other settings is refused (its
labels would mix two models or two samplers). The dtype the model is served in is part of it (float32 and
bfloat16 weights decode other lengths); other engine settings (threads, KV size, batch caps) are not: they change
how fast labels come, not what they are. (Greedy decoding in float32 can still
differ in the last bits between batch compositions, so a resumed run reproduces a label exactly only up
to such ties.)
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass

import polars as pl

from ltrsched.errors import UserError
from ltrsched.workloads.labels import MAIN_RUN, SAMPLE_RUN, SAMPLING_RANGES, sampling_interval


@dataclass(frozen=True)
class Sampling:
    """One run's sampling: ``temperature`` (0: greedy), ``top_p`` (1: off), ``seed`` and ``repetition_penalty``
    (vLLM's: the logits of tokens already in the prompt or the output divided by it where positive, multiplied
    where negative; 1: off). Greedy decoding with a penalty draws nothing at random."""

    temperature: float
    top_p: float
    seed: int
    repetition_penalty: float = 1.0  # (absent from the settings of labels made before it: 1.0, what they used)

    def check(self, prefix: str) -> None:
        """One-line :class:`UserError` for a value out of range; ``prefix`` names the options (``--`` or ``--sample-``)."""
        for name, value in (("temperature", self.temperature), ("top_p", self.top_p),
                            ("repetition_penalty", self.repetition_penalty)):
            low, high, closed = SAMPLING_RANGES[name]
            if not (math.isfinite(value) and (low <= value if closed else low < value) and value <= high):
                raise UserError(f"{prefix}{name.replace('_', '-')} must be in {sampling_interval(name)}, got {value}")
        if not 0 <= self.seed < 2**31:
            raise UserError(f"{prefix}seed must be in [0, 2^31), got {self.seed}")

    def request_seed(self, key: str) -> int | None:
        """vLLM's per-request seed of prompt ``key`` (None when greedy): the same sample whatever the batch."""
        if self.temperature == 0:
            return None
        return int.from_bytes(hashlib.sha256(f"{self.seed}\0{key}".encode()).digest()[:4], "little")


@dataclass(frozen=True)
class LabelSettings:
    """The settings labels depend on.

    Attributes:
        model: the served model's name (``smollm2`` or the directory's name).
        model_sha256: the content hash of its directory (:func:`ltrsched.engine.served_models.model_fingerprint`).
        max_tokens: the output cap [tokens].
        main, sample: the sampling of the main run and of the sampled run.
        prompts_sha256: the SHA-256 of the prompts file's bytes (``--prompts``); empty for the built-in ShareGPT.
        dtype: the dtype the model's weights are served in (``float32``, ``bfloat16``, ...: ``--dtype``, with
            ``auto`` resolved as vLLM does); empty in the settings of labels made before it (not compared).
    """

    model: str
    model_sha256: str
    max_tokens: int
    main: Sampling
    sample: Sampling
    prompts_sha256: str = ""
    dtype: str = ""

    @property
    def keeps_text(self) -> bool:
        """Whether the labels carry their prompt text: a prompts file's do (the built-in's are joined by key)."""
        return bool(self.prompts_sha256)

    def sampling(self, run: str) -> Sampling:
        return {MAIN_RUN: self.main, SAMPLE_RUN: self.sample}[run]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "LabelSettings":
        return cls(model=d["model"], model_sha256=d["model_sha256"], max_tokens=int(d["max_tokens"]),
                   main=Sampling(**d["main"]), sample=Sampling(**d["sample"]),
                   prompts_sha256=str(d.get("prompts_sha256", "")),  # (absent: made before --prompts, built-in)
                   dtype=str(d.get("dtype", "")))  # (absent: made before it was recorded)

    def differences(self, other: "LabelSettings") -> list[str]:
        """``name: theirs -> ours`` for each setting that differs (flattened names, e.g. ``sample.seed``)."""

        def flat(d: dict, prefix: str = "") -> dict:
            out = {}
            for k, v in d.items():
                out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
            return out

        mine, theirs = flat(self.to_dict()), flat(other.to_dict())
        unrecorded = {"dtype"} if not other.dtype else set()  # (settings of labels made before the dtype was recorded)
        return [f"{k} {json.dumps(theirs.get(k))} there, {json.dumps(v)} here" for k, v in mine.items()
                if theirs.get(k) != v and k not in unrecorded]

    def differences_in(self, rows: pl.DataFrame) -> list[str]:
        """:meth:`differences` against the settings a labels table's ``rows`` (a part file's, checked by
        :func:`~ltrsched.workloads.labels.check_labels`) record in their columns: the model, the cap and each run's
        sampling (not the prompts file: a row's ``prompt_sha256`` ties it to its text). One entry per setting, with
        the first other value found."""
        wanted = [(name, rows, getattr(self, name)) for name in ("model", "model_sha256", "max_tokens")]
        for run in (MAIN_RUN, SAMPLE_RUN):
            of_run = rows.filter(pl.col("run") == run)
            wanted += [(f"{run}.{name}", of_run, getattr(self.sampling(run), name))
                       for name in ("temperature", "top_p", "seed", "repetition_penalty")]
        out = []
        for name, table, ours in wanted:
            column = name.rpartition(".")[2]
            other = table.filter(pl.col(column) != ours)[column]
            if other.len():
                out.append(f"{name} {json.dumps(other[0])} there, {json.dumps(ours)} here")
        return out
