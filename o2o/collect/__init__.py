"""Making datasets from real environments (a user of the engine, beside the CLI)."""
