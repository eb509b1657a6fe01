"""Baseline searchers that spend the same benchmark and budget clock as DSM-NAS (no RLlib)."""
