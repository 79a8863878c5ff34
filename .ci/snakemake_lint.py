"""`snakemake --lint` with the accepted findings filtered out precisely; exit 1 on anything else.

Accepted (documented in the Snakefile header and docs/ci.md): one finding per rule, "Specify a conda
environment or container for each rule." Every rule runs the one `centralflows` package in the single
environment of environment.yml / pyproject.toml; per-rule conda envs would install JAX once per rule.
Any other finding, any finding about the Snakefile itself, or a lint run that fails for another
reason (a parse error) fails this gate. `snakemake --lint json` prints no JSON in 9.27, hence the text.

    python .ci/snakemake_lint.py [extra snakemake args, e.g. --config scale=ci]
"""

import re
import subprocess
import sys

ACCEPTED = {"Specify a conda environment or container for each rule."}
HEADER = re.compile(r"^Lints for (rule (\S+)|snakefile (.+)) \(.*\):$|^Lints for (.+):$")
FINDING = re.compile(r"^    \* (.+?):?$")


def main(args: list[str]) -> int:
    proc = subprocess.run(["snakemake", "--lint", *args], capture_output=True, text=True)
    text = proc.stdout + proc.stderr
    accepted, rejected, where = [], [], None
    for line in text.splitlines():
        if line.startswith("Lints for "):
            where = line
            continue
        m = FINDING.match(line)
        if m and where is not None:
            title = m.group(1).strip()
            rule = HEADER.match(where)
            is_rule = bool(rule and rule.group(2))
            (accepted if is_rule and title in ACCEPTED else rejected).append(f"{where} {title}")
    if proc.returncode not in (0, 1) or (proc.returncode == 1 and not (accepted or rejected)):
        print(text)
        print(f"snakemake --lint failed (exit {proc.returncode}) without lint findings")
        return 1
    if proc.returncode == 0 and (accepted or rejected):
        print(text)
        print("snakemake --lint exited 0 but printed findings: the filter no longer matches its output")
        return 1
    for line in rejected:
        print("  NOT ACCEPTED:", line)
    print(
        f"snakemake --lint: {len(accepted)} accepted findings (conda/container per rule), "
        f"{len(rejected)} other"
    )
    if rejected:
        print(text)
    return 1 if rejected else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
