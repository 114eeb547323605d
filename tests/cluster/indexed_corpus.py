"""A small indexed corpus for the Serve tests: sample records ingested into a fresh data dir, with keys."""
from pathlib import Path

from ingest.pipeline import run_ingest
from ingest.sink import IndexSink
from predator.auth import ensure_local_keys
from predator.sample import write_sample
from predator.settings import Settings


def index_corpus(root: Path, records: list, **settings) -> tuple[Settings, dict[str, str]]:
    """Ingest ``records`` under ``root/data`` (one embedding actor); returns the settings and the API keys."""
    config = Settings(data_dir=root / "data", ingest_embed_actors=1, **settings)
    keys = ensure_local_keys(config.keys_path, config.data_dir / "secrets")
    with IndexSink.open(config) as sink:
        run_ingest([write_sample(root / "export.csv", records)], config, sink)
    return config, keys
