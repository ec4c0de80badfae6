"""runstream's ingest side (being built: see issue 5)."""
