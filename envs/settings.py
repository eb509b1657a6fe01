"""Settings dataclasses: one way to declare a field, one way to build them from plain values.

Every settings class of the project (the env's, a space's, the learner's, each method's, a
sweep's) is a dataclass whose fields are declared with `setting(default, help)`: the help is
written once and becomes the CLI's help. `parse_settings` builds such classes from `--set`
values, a sweep file or Python, refusing unknown keys and values of the wrong type with one
`ConfigError` before anything runs; `read_values` first reads values written as text (flags,
YAML) as their fields' types.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Any, Union

from dsmnas.envs.errors import ConfigError


def setting(default: Any, help: str, *, flag: str | None = None, metavar: str | None = None,
            repeat: bool = False, **kw: Any) -> Any:
    """A dataclass field with its one-line help (shown by the CLI and the docs).

    `flag` spells its command-line flag where the derived one (`--budget-queries` for
    `budget_queries`; `--no-NAME` for a boolean that is on by default) would not read well,
    e.g. `--budget` for `budget_s`, `-K`, `--no-graph`; `metavar` names its value in the help;
    `repeat`: a list field whose flag is given once per item (`--set A --set B`). A field
    without a default is a required flag. The flags themselves are made by `dsmnas.experiments.flags` from these fields."""
    metadata = {"help": help}
    if flag is not None:
        metadata["flag"] = flag
    if metavar is not None:
        metadata["metavar"] = metavar
    if repeat:
        metadata["repeat"] = True
    return dataclasses.field(default=default, metadata=metadata, **kw)


def help_of(cls: type, name: str) -> str:
    """The help of field `name` of settings class `cls`, with its default (unless None)."""
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    default = "" if f.default is None else f" (default: {f.default})"
    return f"{f.metadata.get('help', '')}{default}"


def check_types(owner: str, cls: type, values: dict[str, Any]) -> None:
    """ConfigError naming the first of `values` whose type is not its field's in `cls`."""
    hints = _hints(cls)
    for key, value in values.items():
        if key in hints and not _matches(value, hints[key]):
            raise ConfigError(f"{owner} setting {key}={value!r}: expected {_describe(hints[key])}")


def parse_settings(method: str, values: dict[str, Any] | None, *classes: type) -> tuple:
    """One instance of each settings dataclass in `classes`, each from the keys it has.

    ConfigError naming the unknown keys (and listing the allowed ones) or a value whose type
    is not the field's."""
    values = dict(values or {})
    names = [{f.name for f in dataclasses.fields(c)} for c in classes]
    allowed = sorted(set().union(*names))
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise ConfigError(
            f"unknown {method} setting(s) {unknown}; allowed: {', '.join(allowed)}"
        )
    out = []
    for cls, n in zip(classes, names):
        given = {k: v for k, v in values.items() if k in n}
        check_types(method, cls, given)
        try:
            out.append(cls(**given))
        except TypeError as e:  # a settings class with required fields
            raise ConfigError(f"{method} settings: {e}") from None
    return tuple(out)


def read_values(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """`values` with each one of a field of `cls` read as the field's type says, for settings
    written as text (command-line flags; YAML, which reads `2e4` and `1e-3` as text): a number
    field's text as the number, a list field's comma-separated text ("2,4,8") or single value
    as a tuple of its items, each read the same way (null: an empty list). Other keys pass as
    they are, for `parse_settings` to refuse. ConfigError naming the key and the item that is
    not of the field's type (`K: 'x' is not an integer`)."""
    hints = _hints(cls)
    return {k: _read(k, v, hints[k]) if k in hints else v for k, v in values.items()}


def _read(key: str, value: Any, hint: Any) -> Any:
    if typing.get_origin(hint) in (Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None and len(args) < len(typing.get_args(hint)):
            return None
        lists = [a for a in args if typing.get_origin(a) in (tuple, list)]
        others = [a for a in args if isinstance(a, type)]
        if len(args) == 1:
            hint = args[0]
        elif len(lists) == 1 and not any(isinstance(value, a) for a in others):
            hint = lists[0]  # a list, or one of the other types (a sweep's range)
        else:  # a union this does not read: as it is
            return value
    if typing.get_origin(hint) in (tuple, list):
        if isinstance(value, dict):
            raise ConfigError(f"{key} must be a value or a list, got a mapping")
        items = ([] if value is None
                 else [t.strip() for t in value.split(",") if t.strip()] if isinstance(value, str)
                 else list(value) if isinstance(value, (list, tuple)) else [value])
        item = next((a for a in typing.get_args(hint) if a is not Ellipsis), Any)
        return tuple(_read(key, v, item) for v in items)
    if hint in (int, float):
        what = _describe(hint)
        if isinstance(value, str):
            try:
                return hint(value.strip())
            except ValueError:
                raise ConfigError(f"{key}: {value!r} is not {what}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or (hint is int and not isinstance(value, int)):
            raise ConfigError(f"{key}: {value!r} is not {what}")
        return hint(value)
    if hint is str and not isinstance(value, str):
        raise ConfigError(f"{key} must be text, got {value!r}")
    return value


@functools.lru_cache(maxsize=None)
def _hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # an annotation that does not resolve here: no type check
        return {}


def _matches(value: Any, hint: Any) -> bool:
    """Whether `value` is acceptable for a field annotated `hint` (ints for floats, lists for
    tuples; an annotation this does not understand accepts anything)."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return True
    if origin in (Union, types.UnionType):
        return any(_matches(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin in (tuple, list):
        if not isinstance(value, (tuple, list)):
            return False
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        return not args or all(_matches(v, args[0]) for v in value)
    return True


def _describe(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(h) for h in typing.get_args(hint))
    if hint is type(None):
        return "null"
    if hint is bool:
        return "true or false"
    if hint is int:
        return "an integer"
    if hint is float:
        return "a number"
    if hint is str:
        return "text"
    if origin in (tuple, list):
        return "a list"
    return str(hint)
