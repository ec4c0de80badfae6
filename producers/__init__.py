"""runstream's training-side SDK (being built: see issue 4)."""
