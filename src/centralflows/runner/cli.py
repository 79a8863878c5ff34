"""`python -m centralflows opt:NAME [data:NAME] arch:NAME [--options]`, like the authors' main.py."""

from __future__ import annotations

import logging
import os
import re
import sys

from centralflows.engine.registry import OPTIMIZERS
from centralflows.runner.allocator import reexec_with_allocator_env
from centralflows.runner.backend import deterministic_gpu_ops, gpu_given
from centralflows.runner.config import (
    NO_VALUE,
    POSITIONAL,
    ConfigError,
    RunConfig,
    flag,
    help_line,
    option_help,
    resolve_command_line,
)

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
_SUBCOMMAND = re.compile(f"({'|'.join(POSITIONAL)}):(.+)")  # opt:NAME, data:NAME, arch:NAME


def _is_option(token: str) -> bool:
    return token.startswith("--") or token == "-h" or bool(_SUBCOMMAND.fullmatch(token))


def _key(name: str) -> str:
    """Command-line option name -> dotted config key: `eig.initial-neigs` -> `eig.initial_k`."""
    parts = name.replace("-", "_").lower().split(".")
    parts[-1] = ALIASES.get(parts[-1], parts[-1])
    if parts[0] == "arch" and len(parts) == 2:
        parts[-1] = ARCH_ALIASES.get(parts[-1], parts[-1])
    return ".".join(parts)


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


def split_cli_only(overrides: dict) -> tuple[dict, str | None]:
    """Takes the options of CLI_ONLY that choose where to run out of `overrides`.

    Returns:
        (config overrides, `--device` or None). `--expid` becomes `out`, `--eig.solver lobpcg` is
        dropped; `--overwrite` stays for `resolve_command_line`, which reads it with the config.
    """
    overrides, device = dict(overrides), None
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
        device = overrides.pop("device")
        if device not in ("cpu", "cuda"):
            raise ConfigError(f"invalid value for 'device': {device!r} (allowed: cpu, cuda)", key="device")
    if "expid" in overrides:
        expid = overrides.pop("expid")
        if not isinstance(expid, str) or not expid:
            raise ConfigError(f"invalid value for 'expid': {expid!r} (allowed: a folder name)", key="expid")
        if "out" in overrides:
            raise ConfigError("'expid' and 'out' both name the output folder; give one", key="expid",
                              suggestions=("out",))  # fmt: skip
        overrides["out"] = os.path.join(os.environ.get("EXPERIMENT_DIR", "experiments"), expid)
    return overrides, device


def parse_args(argv: list[str]) -> RunConfig:
    """The resolved run config of a command line (see `centralflows.runner.config.resolve_command_line`).

    Raises:
        ConfigError: an unknown option or an invalid value (messages use config keys).
    """
    overrides, _ = split_cli_only(tokenize(list(argv))[0])
    return resolve_command_line(overrides)[0]


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
            text = text.replace(f"'{key}'", flag(key))
    return text


def usage(overrides: dict | None = None) -> str:
    """USAGE followed by every option with its default and meaning."""
    lines, note = option_help(overrides or {})
    forms = {key: flag(key) + ("" if key == "overwrite" else " V") for key in CLI_ONLY}  # overwrite: a flag
    own = [help_line(forms[key], text) for key, text in CLI_ONLY.items()]
    lines = [USAGE, "options:", *lines, *own, help_line("-h, --help", "show this message"), "", note]
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
        overrides, want_help = tokenize(argv)
        overrides, device = split_cli_only(overrides)
        if want_help:
            print(usage(overrides))
            return 0
        config, overwrite = resolve_command_line(overrides)
        if device == "cuda" or (device is None and gpu_given()):
            deterministic_gpu_ops()  # before JAX initialises its backends
        if device:
            select_device(device)
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
        config = prepare_out_dir(config, overwrite=overwrite)
        print(f"Saving data to: {os.path.join(config.out, 'data.hdf5')}", flush=True)
        run(config)
    except (ConfigError, DataError) as err:
        print(f"error: {_message(err)}", file=sys.stderr)
        return 2
    except RunStopped as err:
        print(f"stopped: {err}", file=sys.stderr)
        return 128 + err.signum  # as a shell reports a signal: schedulers requeue / Snakemake resumes
    return 0
