"""The one flag builder: every `dsmnas` flag that sets a setting is made here, from the
settings dataclasses' fields.

A field declared with `setting(default, help)` (`dsmnas.envs.settings`) gives one flag:
- its spelling: the field's `flag` metadata (`--budget` for `budget_s`, `-K`, `--no-graph`),
  else `--NAME` with dashes (`--budget-queries`), or `--no-NAME` for a boolean on by default;
- its value from the annotation: int, float, text (`None` allowed where the field allows it);
  a boolean is a switch that flips the default; a tuple of numbers is one comma-separated
  value (`--K 2,4,8`, parsed by the settings as a sweep file's text is); a tuple of text takes one or more values (`--init-from A B`); a tuple
  of pairs (`limits`) or of items (`set`) is a repeatable `KEY=VALUE` flag;
- its help: the field's help and its default.

A flag that is not given is absent from the parsed namespace (`argparse.SUPPRESS`): the
settings' own defaults, or a space's (`SpaceSpec.env_defaults`, `learner_defaults`), apply,
and `FlagSet.given(args)` returns exactly what the user typed, keyed by field name, for
`parse_settings` / `EnvConfig.from_dict`. Light on purpose: no torch, Ray or pandas.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Union

_PAIRS = "pairs"  # a repeatable KEY=VALUE flag


@dataclass
class FlagSet:
    """The flags one settings class added to a parser: argparse dest -> field name."""

    cls: type
    dests: dict[str, str] = field(default_factory=dict)

    def given(self, args: argparse.Namespace) -> dict[str, Any]:
        """The values given on the command line, by field name (absent: not given)."""
        return {name: getattr(args, dest) for dest, name in self.dests.items() if hasattr(args, dest)}

    def settings(self, args: argparse.Namespace, owner: str):
        """An instance of `cls` from the values given (its defaults for the rest), checked
        by `parse_settings` (`owner` names them in errors)."""
        from dsmnas.envs.settings import parse_settings

        (obj,) = parse_settings(owner, self.given(args), self.cls)
        return obj


def flag_name(f: dataclasses.Field, hint: Any) -> str:
    """The flag that sets field `f` (see the module docstring)."""
    if "flag" in f.metadata:
        return f.metadata["flag"]
    dashed = f.name.replace("_", "-")
    return f"--no-{dashed}" if _base(hint) is bool and f.default is True else f"--{dashed}"


def add_flags(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    *,
    only: Iterable[str] | None = None,
    skip: Iterable[str] = (),
    defaults: Mapping[str, Any] | None = None,
    dest_prefix: str = "",
) -> FlagSet:
    """Add one flag per field of settings class `cls` (those in `only`, in that order, else
    every field but `skip`). `defaults`: fields whose flag has a default of this command's
    own (kept in the namespace even when not given, e.g. `search --seed 0`). `dest_prefix`
    keeps two classes' fields of the same name apart in one namespace."""
    hints = typing.get_type_hints(cls)
    by_name = {f.name: f for f in dataclasses.fields(cls)}
    names = list(only) if only is not None else [n for n in by_name if n not in set(skip)]
    defaults = dict(defaults or {})
    out = FlagSet(cls)
    for name in names:
        f, hint = by_name[name], hints[name]
        dest = dest_prefix + name
        out.dests[dest] = name
        default = defaults.get(name, f.default)
        kw: dict[str, Any] = {
            "dest": dest,
            "default": defaults[name] if name in defaults else argparse.SUPPRESS,
            "help": _help(f, default),
        }
        kind = _PAIRS if f.metadata.get("repeat") else _kind(hint)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            kw.update(required=True, default=None)
        if kind is bool:
            kw.update(action="store_const", const=not bool(f.default))
        elif kind == _PAIRS:
            kw.update(action="append", metavar=f.metadata.get("metavar", "KEY=VALUE"))
        elif kind is tuple:
            kw.update(nargs="+", metavar=f.metadata.get("metavar", name.upper()))
        elif isinstance(kind, tuple):  # numbers, comma-separated: the settings parse the text
            kw.update(metavar=f.metadata.get("metavar", f"{name}1,{name}2,..."))
        else:
            kw.update(type=kind, metavar=f.metadata.get("metavar", name.upper()))
        parser.add_argument(flag_name(f, hint), **kw)
    return out


def _help(f: dataclasses.Field, default: Any) -> str:
    text = f.metadata.get("help", "")
    if f.default is True:  # the flag turns it off
        return f"turn off: {text}"
    if default in (None, (), dataclasses.MISSING) or isinstance(default, bool) \
            or "default" in text:
        return text
    return f"{text} (default: {default})"


def _base(hint: Any) -> Any:
    """`X` of `X | None`."""
    if typing.get_origin(hint) in (Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0] if len(args) == 1 else hint
    return hint


def _kind(hint: Any) -> Any:
    """bool, int, float, str, tuple (of text: one or more values), (number,) for a tuple of
    numbers, or _PAIRS for a tuple of KEY=VALUE items."""
    base = _base(hint)
    if base in (bool, int, float, str):
        return base
    if typing.get_origin(base) is tuple:
        item = [a for a in typing.get_args(base) if a is not Ellipsis][0]
        if typing.get_origin(item) is tuple:
            return _PAIRS
        if item in (int, float):
            return (item,)
        return tuple
    return str
