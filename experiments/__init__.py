"""What users run: the `dsmnas` CLI and the named experiments."""
