"""The project's own error for bad input: what a user can fix by changing a setting or a file.

Everything the platform checks on a user's behalf (a setting out of range, an unknown name, a
malformed or missing file) raises `ConfigError`; the CLI prints it as one line and exits with
code 2. Any other exception is a bug and keeps its traceback (exit code 1). `ConfigError` is a
`ValueError` and `MissingFileError` also a `FileNotFoundError`, so callers that caught those
keep working.
"""


class ConfigError(ValueError):
    """Bad input, named with the value and what is allowed."""


class MissingFileError(ConfigError, FileNotFoundError):
    """A file or folder the user named (or a default location) does not exist."""
