"""Private local Ray clusters: bound to 127.0.0.1, own temp dir, capped object store, stopped by id."""
