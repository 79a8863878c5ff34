"""The typed-option kit of the run configuration: an option's declaration, conversion and checks."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass


class _NoValue:
    """A command-line option given without a value: True for a flag, [] for a list, else an error."""

    def __repr__(self):
        return "NO_VALUE"

    def __deepcopy__(self, memo):
        return self  # stays recognisable through resolve_config's copy


NO_VALUE = _NoValue()


class ConfigError(ValueError):
    """A user error in a run configuration (unknown key or invalid value).

    Attributes:
        key: the dotted key at fault ("eig.frequency"), or None.
        suggestions: close matches of an unknown key, as dotted keys.
    """

    def __init__(self, message: str, key: str | None = None, suggestions: tuple = ()):
        super().__init__(message)
        self.key = key
        self.suggestions = tuple(suggestions)


@dataclass(frozen=True)
class Option:
    """One leaf of the config: its default, its meaning, and what values it allows.

    Attributes:
        default: the value used when the key is not given (None with `required`: must be given).
        help: what the key means; shown by `--help` (this is the comment of the key).
        kind: bool, int, float, str or list; inferred from `default` when None.
        item: element kind of a list.
        optional: None is an allowed value.
        required: the key has no default and must be given.
        choices: the allowed values (strings; `-` and `_` are interchangeable when matching).
        check: predicate on the converted value; `allowed` says in words what it accepts.
        strict: a value that does not convert to `kind` is an error; dataset and architecture options
            are not strict (e.g. data.classes takes 4 or "binary"), their modules check them.
    """

    default: object
    help: str
    kind: type | None = None
    item: type | None = None
    optional: bool = False
    required: bool = False
    choices: tuple = ()
    check: Callable | None = None
    allowed: str = ""
    strict: bool = True

    @property
    def type(self) -> type:
        return self.kind or (type(self.default) if self.default is not None else object)


def option(help: str, default=None, **kwargs) -> dataclasses.Field:
    """A field of a config section: its default, and (as metadata) the rest of its `Option`."""
    factory = (lambda: list(default)) if isinstance(default, list) else None
    meta = {"option": dict(help=help, **kwargs)}
    if factory:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def flatten(tree: dict, prefix: str = "") -> dict:
    """{"a": {"b": 1}} -> {"a.b": 1}."""
    out = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, path + "."))
        else:
            out[path] = value
    return out


def nest(overrides: dict) -> dict:
    """{"a.b": 1} -> {"a": {"b": 1}}, the inverse of flatten; dotted and nested keys merge."""
    out: dict = {}
    for key, value in flatten(overrides).items():
        node, parts = out, key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"'{key}' conflicts with a value given for '{part}'", key=key)
        if isinstance(value, dict):  # an empty section (flatten keeps it as a leaf): adds no key
            node.setdefault(parts[-1], {})
        else:
            node[parts[-1]] = value
    return out


def spellings(name: str) -> tuple:
    """`name` and its spellings with `-` and `_` swapped: choices and component names accept each."""
    return tuple(dict.fromkeys((name, name.replace("-", "_"), name.replace("_", "-"))))


def describe(opt: Option) -> str:
    if opt.choices:
        text = ", ".join(opt.choices)
        text = f"a list of values from {text}" if opt.type is list else f"one of {text}"
    else:
        names = {bool: "true or false", int: "an integer", float: "a number", str: "a string", list: "a list"}
        text = opt.allowed or names.get(opt.type, opt.type.__name__)
    return text + (", or none" if opt.optional else "")


def _scalar(value, kind: type):
    """Converts one value (possibly a command-line string) to `kind`; raises ValueError if it can't."""
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ValueError
    if isinstance(value, bool):
        raise ValueError
    if kind is int:
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            number = float(value)
            if number.is_integer():
                return int(number)
        raise ValueError
    if kind is float:
        if isinstance(value, int | float | str):
            return float(value)
        raise ValueError
    if kind is str:
        if isinstance(value, str | os.PathLike):
            return os.fspath(value)
        raise ValueError
    return _literal(value)


def _literal(value):
    """A dataset/architecture option whose default is None: int, float, none or string."""
    if not isinstance(value, str):
        return value
    for convert in (int, float):
        try:
            return convert(value)
        except ValueError:
            pass
    return None if value.lower() in ("none", "null") else value


def _choose(value, choices: tuple):
    for spelling in spellings(value):
        if spelling in choices:
            return spelling
    raise ValueError


def convert_value(path: str, value, opt: Option):
    """The value of `path` converted to the option's kind and checked; ConfigError otherwise."""
    if value is NO_VALUE:
        if opt.type is bool:
            return True
        if opt.type is list:
            value = []
        else:
            raise ConfigError(f"'{path}' needs a value: {describe(opt)}", key=path)
    if opt.optional and (value is None or (isinstance(value, str) and value.lower() in ("none", "null"))):
        return None
    try:
        if opt.type is list:
            items = [value] if isinstance(value, str | int | float) else list(value)
            out = [_scalar(v, opt.item) for v in items]
            out = [_choose(v, opt.choices) for v in out] if opt.choices else out
        else:
            try:
                out = _scalar(value, opt.type)
            except ValueError:
                if opt.strict or not isinstance(value, str):
                    raise
                out = _literal(value)
            out = _choose(out, opt.choices) if opt.choices else out
        if opt.check is not None and not opt.check(out):
            raise ValueError
    except (ValueError, TypeError):
        raise ConfigError(
            f"invalid value for '{path}': {value!r} (allowed: {describe(opt)})", key=path
        ) from None
    return out
