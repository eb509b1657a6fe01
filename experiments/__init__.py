"""What users run: the `dsmnas` CLI and the named experiments."""

from dsmnas import _guard

_guard(__name__)
