"""A tiny random-weight Hugging Face model directory for the HF-backbone tests (config only, no tokenizer)."""

from __future__ import annotations

from pathlib import Path


def save_tiny_opt(directory: Path) -> Path:
    """Write the config.json of a 1-layer, 16-wide OPT (vocabulary 512, 64 positions) into ``directory``; returns it.
    Needs transformers (the caller skips without it)."""
    import transformers

    transformers.OPTConfig(vocab_size=512, hidden_size=16, num_hidden_layers=1, ffn_dim=32, num_attention_heads=2,
                           max_position_embeddings=64, word_embed_proj_dim=16).save_pretrained(directory)
    return directory
