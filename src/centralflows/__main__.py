"""Entry point of `python -m centralflows` (and of the `centralflows` command).

python -m centralflows opt:gd data:cifar10 arch:mlp ...   # one run (the authors' main.py command line)
python -m centralflows status --scale ci                  # every cell of a scale: state, step, ETA
"""

from centralflows.runner.cli import entry

raise SystemExit(entry())
