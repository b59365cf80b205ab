"""Synthetic gold corpus: OMOP NOTE rows with gold spans and tiers."""
