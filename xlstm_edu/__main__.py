"""``python -m xlstm_edu``: the command line (see :mod:`xlstm_edu.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
