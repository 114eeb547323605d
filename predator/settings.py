"""The one settings object of the platform.

Values come from environment variables with the ``PREDATOR_`` prefix and an optional ``.env`` file.
Nothing reads the environment at import time: call :func:`get_settings` (or build ``Settings()``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every tunable of the platform, with the embedded defaults of a one-machine install."""

    model_config = SettingsConfigDict(env_prefix="PREDATOR_", env_file=".env", extra="ignore")

    data_dir: Path = Field(Path("data"), description="Root of indexes, quarantine, journals, keys.")

    # Backends: embedded defaults, scale-out engines by URL.
    keyword_backend: Literal["tantivy", "opensearch"] = "tantivy"
    opensearch_url: str = "http://127.0.0.1:9200"
    opensearch_index: str = "declarations"
    vector_backend: Literal["qdrant-edge", "qdrant"] = "qdrant-edge"
    qdrant_url: str | None = Field(None, description="Qdrant server URL; unset means client local mode.")
    qdrant_collection: str = "declarations"

    # Models: packaged defaults; any sentence-transformers directory replaces the embedder.
    embedding_model: str | None = Field(None, description="Path of a sentence-transformers model dir.")
    embedding_batch_size: int = 64
    torch_threads: int = 1

    # Local Ray cluster and Serve.
    ray_address: str | None = Field(None, description="Address of an existing cluster; unset starts a private one.")
    ray_num_cpus: int = 2
    ray_object_store_mb: int = 512
    host: str = "127.0.0.1"
    http_port: int = 8000

    # Security: API keys with roles. Empty means generate local keys into data_dir on first run.
    api_keys_file: Path | None = Field(None, description="JSON file {key: role}; default data_dir/api_keys.json.")
    admin_key: SecretStr | None = None

    # Ingest.
    ingest_batch_size: int = 512
    ingest_embed_actors: int = 1

    # Search limits (bad input beyond them is a 4xx).
    max_query_chars: int = 512
    max_page_size: int = 100
    retriever_depth: int = 100

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "index"

    @property
    def quarantine_dir(self) -> Path:
        return self.data_dir / "quarantine"

    @property
    def keys_path(self) -> Path:
        return self.api_keys_file or self.data_dir / "api_keys.json"


def get_settings(**overrides) -> Settings:
    """Build settings from the environment now (never at import), with explicit overrides on top."""
    return Settings(**overrides)
