"""`python -m centralflows opt:NAME [data:NAME] arch:NAME [--options]`, like the authors' main.py."""

from __future__ import annotations

import logging
import os
import re
import sys

from centralflows import config as C
from centralflows.config import NO_VALUE, ConfigError, Option

USAGE = """\
usage: python -m centralflows opt:{gd,scalar_rmsprop,rmsprop} [data:NAME] arch:NAME [--OPTION VALUE ...]

Runs the discrete optimizer and its flows in lockstep and writes OUT/data.hdf5 (authors' layout).
opt:NAME and arch:NAME are required; data:NAME defaults to cifar10. Options take `--a.b=v` or
`--a.b v`; `-` and `_` are interchangeable in names and case is ignored; lists take several values
(`--runs discrete central`); flags take no value (`--opt.bias-correction`, `--opt.no-bias-correction`).
Aliases: --eig.initial-neigs = --eig.initial-k, --stable.max-Seff = --stable.max-seff.

example: python -m centralflows opt:gd data:cifar10 arch:mlp --data.classes=4 --data.n=1000 \\
           --data.criterion=mse --opt.lr=0.02 --runs discrete central --steps=1000 --eig.frequency=1
"""

ALIASES = {"initial_neigs": "initial_k"}  # the authors' spelling -> ours, on the last name part
_SUBCOMMAND = re.compile(r"(opt|data|arch):(.+)")


def _is_option(token: str) -> bool:
    return token.startswith("--") or token == "-h" or bool(_SUBCOMMAND.fullmatch(token))


def _key(name: str) -> str:
    """Command-line option name -> dotted config key: `eig.initial-neigs` -> `eig.initial_k`."""
    parts = name.replace("-", "_").lower().split(".")
    parts[-1] = ALIASES.get(parts[-1], parts[-1])
    return ".".join(parts)


def _flag(key: str) -> str:
    """Dotted config key -> how the command line spells it."""
    section, _, leaf = key.rpartition(".")
    if leaf == "name" and section in ("opt", "data", "arch"):
        return f"{section}:NAME"
    return "--" + key.replace("_", "-")


def tokenize(argv: list[str]) -> tuple[dict, bool]:
    """Splits argv into ({dotted key: raw value}, help requested).

    A raw value is a string, a list of strings (several values) or NO_VALUE (a bare flag).
    """
    overrides, want_help, i = {}, False, 0
    while i < len(argv):
        token = argv[i]
        i += 1
        sub = _SUBCOMMAND.fullmatch(token)
        if token in ("-h", "--help"):
            want_help = True
        elif sub:
            overrides[f"{sub[1]}.name"] = sub[2]
        elif token.startswith("--") and len(token) > 2:
            name, eq, value = token[2:].partition("=")
            values = [value] if eq else []
            while not eq and i < len(argv) and not _is_option(argv[i]):
                values.append(argv[i])
                i += 1
            overrides[_key(name)] = values[0] if len(values) == 1 else values or NO_VALUE
        else:
            raise ConfigError(f"unexpected argument '{token}'")
    return overrides, want_help


def _schema(overrides: dict, with_components: bool) -> dict:
    if not with_components:
        return C.SCHEMA
    return C.schema_for(overrides.get("data.name", C.DEFAULTS["data"]["name"]), overrides.get("arch.name"))[0]


def _negate(overrides: dict) -> dict:
    """`--x.no-flag` -> x.flag = False, for boolean options."""
    out = {}
    for key, value in overrides.items():
        head, _, leaf = key.rpartition(".")
        if leaf.startswith("no_") and value is NO_VALUE:
            target = f"{head}.{leaf[3:]}" if head else leaf[3:]
            schema = _schema(overrides, with_components=head.split(".")[0] in ("data", "arch"))
            opt = C._option(schema, target.split("."))
            if isinstance(opt, Option) and opt.type is bool:
                key, value = target, False
        out[key] = value
    return out


def parse_args(argv: list[str]) -> dict:
    """The resolved run config of a command line (see `centralflows.config.resolve_config`).

    Raises:
        ConfigError: an unknown option or an invalid value (messages use config keys).
    """
    overrides, _ = tokenize(list(argv))
    return C.resolve_config(_negate(overrides))


def _message(err: Exception) -> str:
    """A ConfigError in command-line spelling: 'eig.frequncy' -> --eig.frequncy."""
    text = str(err).replace("unknown key", "unknown option")
    for key in (getattr(err, "key", None), *getattr(err, "suggestions", ())):
        if key:
            text = text.replace(f"'{key}'", _flag(key))
    return text


def usage(overrides: dict | None = None) -> str:
    """USAGE followed by every option with its default and meaning."""
    overrides = overrides or {}
    lines, note = [USAGE, "options:"], ""
    try:
        schema = _schema(overrides, with_components=True)
    except (ImportError, ConfigError) as err:  # unknown or not yet importable dataset/architecture
        schema, note = C.SCHEMA, f"(dataset/architecture options not listed: {err})"
    for key, opt in C.flatten(schema).items():
        if key.endswith(".name") and key.count(".") == 1:
            continue
        if not isinstance(opt, Option):  # a process's eig overrides
            lines.append(f"  {_flag(key) + '.OPTION V':<36}  this process's override of --eig.OPTION")
            continue
        head, _, leaf = key.rpartition(".")
        if opt.type is bool:
            form = f"{_flag(key)} / {_flag(f'{head}.no_{leaf}' if head else f'no_{leaf}')}"
        else:
            form = f"{_flag(key)} {'V [V ...]' if opt.type is list else 'V'}"
        allowed = f"{C._describe(opt)}; " if opt.choices or opt.allowed else ""
        default = "required" if opt.required else f"default {opt.default!r}"
        text = f"{opt.help} ({allowed}{default})"
        lines.append(f"  {form:<36}  {text}" if len(form) <= 36 else f"  {form}\n  {'':<36}  {text}")
    lines += [f"  {'-h, --help':<36}  show this message", "", note]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    """Parses the command line, prints where the data goes, and runs the experiment.

    Returns:
        0 on success, 2 on a user error (printed as `error: ...` to stderr, no traceback).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        overrides, want_help = tokenize(argv)
        if want_help:
            print(usage(_negate(overrides)))
            return 0
        config = C.resolve_config(_negate(overrides))
    except ConfigError as err:
        print(f"error: {_message(err)}", file=sys.stderr)
        print("(python -m centralflows --help lists the options)", file=sys.stderr)
        return 2
    print(f"Saving data to: {os.path.join(config['out'], 'data.hdf5')}", flush=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("jax").setLevel(logging.WARNING)
    from centralflows.data import DataError
    from centralflows.experiment import RunStopped, run  # heavy (JAX, models): only for a valid command line

    try:
        run(config)
    except (ConfigError, DataError) as err:
        print(f"error: {_message(err)}", file=sys.stderr)
        return 2
    except RunStopped as err:
        print(f"stopped: {err}", file=sys.stderr)
        return 143  # as if killed by SIGTERM: schedulers requeue / Snakemake retries and resumes
    return 0
