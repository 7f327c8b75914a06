"""``python -m stn`` (and ``torchrun -m stn``): the ``stn`` command."""

import sys

from stn.cli import main

sys.exit(main())
