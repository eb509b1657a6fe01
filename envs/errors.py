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


def require_extra(needed_by: str, modules: tuple[str, ...] | list[str], extra: str) -> None:
    """Bad input if a package of an optional extra is missing, said in one line with the extra
    to install: `--search-alg hyperopt needs the package 'hyperopt', which is not installed:
    pip install 'dsmnas[hyperopt]'`. The packages are looked up, not imported (a heavy one is
    imported where it is used), so that a command refuses at once, before Ray starts."""
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        names = ", ".join(repr(m) for m in missing)
        raise ConfigError(f"{needed_by} needs the package{'s' * (len(missing) > 1)} {names}, "
                          f"which {'are' if len(missing) > 1 else 'is'} not installed: "
                          f"pip install 'dsmnas[{extra}]'")
