"""``python -m oucr`` is the same as the ``oucr`` command."""

import sys

from oucr.cli import main

if __name__ == "__main__":
    sys.exit(main())
