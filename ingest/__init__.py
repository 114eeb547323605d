"""The ingest job: read declaration exports, validate, normalise, enrich, embed, index (Ray Data)."""
