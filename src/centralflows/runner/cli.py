"""`python -m centralflows opt:NAME [data:NAME] arch:NAME [--options]`, like the authors' main.py."""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import sys

from centralflows.engine.registry import OPTIMIZERS
from centralflows.runner import config as C
from centralflows.runner.allocator import reexec_with_allocator_env
from centralflows.runner.backend import deterministic_gpu_ops, gpu_given
from centralflows.runner.config import NO_VALUE, ConfigError, Option, RunConfig

USAGE = """\
usage: python -m centralflows opt:{OPTIMIZERS} [data:NAME] arch:NAME [--OPTION VALUE ...]

Runs the discrete optimizer and its flows in lockstep and writes OUT/data.hdf5 (authors' layout).
opt:NAME and arch:NAME are required; data:NAME defaults to cifar10. Options take `--a.b=v` or
`--a.b v`; `-` and `_` are interchangeable in names and case is ignored; lists take several values
(`--runs discrete central`); flags take no value (`--opt.bias-correction`, `--opt.no-bias-correction`).
Aliases: --eig.initial-neigs = --eig.initial-k, --stable.max-Seff = --stable.max-seff, and the authors'
architecture names --arch.nhead / --arch.num-heads = --arch.heads, --arch.hidden-dim = --arch.hidden,
--arch.embd-dim = --arch.embed-dim. As in the authors' main.py, --steps counts the steps taken after
--warm-start and after the step of --load.path (the run config and data.hdf5 record the last step).

example: python -m centralflows opt:gd data:cifar10 arch:mlp --data.classes=4 --data.n=1000 \\
           --data.criterion=mse --opt.lr=0.02 --runs discrete central --steps=1000 --eig.frequency=1
""".replace("{OPTIMIZERS}", "{" + ",".join(OPTIMIZERS) + "}")

ALIASES = {"initial_neigs": "initial_k"}  # the authors' spelling -> ours, on the last name part
# the authors' architecture option names (their dataclass fields) -> ours
ARCH_ALIASES = {"nhead": "heads", "num_heads": "heads", "hidden_dim": "hidden", "embd_dim": "embed_dim"}
# options of the authors' main.py that select where and how to run, not what: not part of the config
CLI_ONLY = {
    "device": "cpu or cuda: the JAX platform (default: JAX's choice, a GPU when there is one)",
    "expid": "write to $EXPERIMENT_DIR/EXPID (EXPERIMENT_DIR defaults to experiments), as --out does",
    "eig.solver": "lobpcg, the only eigensolver (the authors' scipy Lanczos is not offered)",
    "overwrite": "delete the work of another run in the output folder instead of refusing",
}
_SUBCOMMAND = re.compile(r"(opt|data|arch):(.+)")


def _is_option(token: str) -> bool:
    return token.startswith("--") or token == "-h" or bool(_SUBCOMMAND.fullmatch(token))


def _key(name: str) -> str:
    """Command-line option name -> dotted config key: `eig.initial-neigs` -> `eig.initial_k`."""
    parts = name.replace("-", "_").lower().split(".")
    parts[-1] = ALIASES.get(parts[-1], parts[-1])
    if parts[0] == "arch" and len(parts) == 2:
        parts[-1] = ARCH_ALIASES.get(parts[-1], parts[-1])
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
            continue
        if sub:
            key, value = f"{sub[1]}.name", sub[2]
        elif token.startswith("--") and len(token) > 2:
            name, eq, value = token[2:].partition("=")
            values = [value] if eq else []
            while not eq and i < len(argv) and not _is_option(argv[i]):
                values.append(argv[i])
                i += 1
            key, value = _key(name), values[0] if len(values) == 1 else values or NO_VALUE
        else:
            raise ConfigError(f"unexpected argument '{token}'")
        if key in overrides:  # silently keeping the last of two values hides a mistake
            raise ConfigError(f"'{key}' is given twice; give it once", key=key)
        overrides[key] = value
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
            opt = C.schema_node(schema, target.split("."))
            if isinstance(opt, Option) and opt.type is bool:
                if target in overrides:
                    raise ConfigError(
                        f"'{target}' and '{key}' contradict each other; give one",
                        key=target, suggestions=(key,),
                    )  # fmt: skip
                key, value = target, False
        out[key] = value
    return out


def split_cli_only(overrides: dict) -> tuple[dict, dict]:
    """Takes the options of CLI_ONLY out of `overrides` and applies the authors' command-line defaults.

    Returns:
        (config overrides, {"device": str | None, "overwrite": bool}). `--expid` becomes `out`,
        `--eig.solver lobpcg` is dropped; a missing `--steps` is 50 and a missing `--data.classes` of
        cifar10 is 10, the defaults of the authors' main.py.
    """
    overrides, extra = dict(overrides), {"device": None, "overwrite": False}
    for key in [k for k in overrides if k == "eig.solver" or k.endswith(".eig.solver")]:
        value = overrides.pop(key)
        if value == "scipy":
            raise ConfigError(
                f"'{key}' scipy: the Lanczos solver is not offered here; the eigensolver is LOBPCG "
                "(pass lobpcg or leave the option out)",
                key=key,
            )
        if value != "lobpcg":
            raise ConfigError(f"invalid value for '{key}': {value!r} (allowed: lobpcg)", key=key)
    if "device" in overrides:
        extra["device"] = overrides.pop("device")
        if extra["device"] not in ("cpu", "cuda"):
            raise ConfigError(
                f"invalid value for 'device': {extra['device']!r} (allowed: cpu, cuda)", key="device"
            )
    if "overwrite" in overrides:
        extra["overwrite"] = C.convert_value("overwrite", overrides.pop("overwrite"), Option(False, ""))
    if "expid" in overrides:
        expid = overrides.pop("expid")
        if not isinstance(expid, str) or not expid:
            raise ConfigError(f"invalid value for 'expid': {expid!r} (allowed: a folder name)", key="expid")
        if "out" in overrides:
            raise ConfigError("'expid' and 'out' both name the output folder; give one", key="expid",
                              suggestions=("out",))  # fmt: skip
        overrides["out"] = os.path.join(os.environ.get("EXPERIMENT_DIR", "experiments"), expid)
    overrides.setdefault("steps", "50")
    if overrides.get("data.name", C.DEFAULTS["data"]["name"]) == "cifar10":
        overrides.setdefault("data.classes", "10")
    return overrides, extra


def count_steps(config: RunConfig) -> RunConfig:
    """The config of a command line whose `steps` counts the steps after warm start and load (authors').

    The engine's `steps` is the last step: warm_start (if > 0) plus the step of load.path are added.
    """
    if config.steps < 1:
        raise ConfigError(
            f"invalid value for 'steps': {config.steps} (allowed: an integer >= 1, the steps to run)",
            key="steps",
        )
    start = max(config.warm_start, 0)
    if config.load.path:
        from centralflows.runner.checkpoint import CheckpointError, read_meta

        try:
            start += int(read_meta(config.load.path)["step"])
        except (CheckpointError, KeyError, TypeError, ValueError) as err:
            raise ConfigError(f"'load.path': {err}", key="load.path") from None
    return dataclasses.replace(config, steps=config.steps + start)


def resolve(argv: list[str]) -> tuple[RunConfig | dict, dict, bool]:
    """(run config, CLI-only options, help requested) of a command line; with help, the overrides given."""
    overrides, want_help = tokenize(list(argv))
    overrides, extra = split_cli_only(_negate(overrides))
    if want_help:
        return overrides, extra, True
    return count_steps(C.resolve_config(overrides)), extra, False


def parse_args(argv: list[str]) -> RunConfig:
    """The resolved run config of a command line (see `centralflows.runner.config.resolve_config`).

    Raises:
        ConfigError: an unknown option or an invalid value (messages use config keys).
    """
    return resolve(argv)[0]


def select_device(device: str):
    """Makes JAX use `device` (cpu or cuda); called before JAX initialises its backends."""
    os.environ["JAX_PLATFORMS"] = device
    import jax

    jax.config.update("jax_platforms", device)
    try:
        jax.devices()
    except (RuntimeError, AssertionError) as err:  # JAX asserts when no platform of the list initialises
        why = f" ({err})" if str(err) else ""
        raise ConfigError(
            f"'device' {device}: JAX has no {device} backend here{why} (for cuda: a visible GPU and "
            "jax[cuda12] installed); use --device cpu",
            key="device",
        ) from None


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
        allowed = f"{C.describe(opt)}; " if opt.choices or opt.allowed else ""
        default = "required" if opt.required else f"default {opt.default!r}"
        text = f"{opt.help} ({allowed}{default})"
        if key == "steps":  # the command line counts as the authors' main.py does (count_steps)
            text = "steps to run after --warm-start and after the step of --load.path (default 50)"
        lines.append(f"  {form:<36}  {text}" if len(form) <= 36 else f"  {form}\n  {'':<36}  {text}")
    for key, text in CLI_ONLY.items():
        form = _flag(key) + ("" if key == "overwrite" else " V")
        lines.append(f"  {form:<36}  {text}")
    lines += [f"  {'-h, --help':<36}  show this message", "", note]
    return "\n".join(lines).rstrip() + "\n"


def entry() -> int:
    """The program `python -m centralflows` / `centralflows`: `main` in a process that has the engine's
    allocator settings (runner.allocator: restarted with them if they are missing)."""
    reexec_with_allocator_env(sys.argv[1:])
    return main()


def main(argv: list[str] | None = None) -> int:
    """Parses the command line, prints where the data goes, and runs the experiment.

    Returns:
        0 on success, 2 on a user error (printed as `error: ...` to stderr, no traceback), and
        128 + the signal number (143 for SIGTERM, 130 for SIGINT) when a signal stopped the run.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] in (["status"],):  # the views of a workflow scale, not a run
        from centralflows.runner.status import main as status

        return status(argv[1:])
    if argv[:1] == ["plan"]:  # the resolved plan of a workflow scale: cell, run id, arch, eta, steps
        from centralflows.plan.table import main as plan_table

        return plan_table(argv[1:])
    try:
        config, extra, want_help = resolve(argv)
        if want_help:
            print(usage(config))
            return 0
        if extra["device"] == "cuda" or (extra["device"] is None and gpu_given()):
            deterministic_gpu_ops()  # before JAX initialises its backends
        if extra["device"]:
            select_device(extra["device"])
    except ConfigError as err:
        print(f"error: {_message(err)}", file=sys.stderr)
        print("(python -m centralflows --help lists the options)", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("jax").setLevel(logging.WARNING)
    from centralflows.problem.data import DataError
    from centralflows.runner.experiment import (  # heavy: only for a valid line
        RunStopped,
        prepare_out_dir,
        run,
    )

    try:
        config = prepare_out_dir(config, overwrite=extra["overwrite"])
        print(f"Saving data to: {os.path.join(config.out, 'data.hdf5')}", flush=True)
        run(config)
    except (ConfigError, DataError) as err:
        print(f"error: {_message(err)}", file=sys.stderr)
        return 2
    except RunStopped as err:
        print(f"stopped: {err}", file=sys.stderr)
        return 128 + err.signum  # as a shell reports a signal: schedulers requeue / Snakemake resumes
    return 0
