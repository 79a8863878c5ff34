"""Entry point of `python -m centralflows`.

python -m centralflows opt:gd data:cifar10 arch:mlp ...   # one run (the authors' main.py command line)
python -m centralflows status --scale ci                  # every cell of a scale: state, step, ETA
"""

import sys

if sys.argv[1:2] == ["status"]:
    from centralflows.runner.status import main

    raise SystemExit(main(sys.argv[2:]))

from centralflows.runner.cli import main  # noqa: E402

raise SystemExit(main())
