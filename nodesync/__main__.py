"""``python -m nodesync ...``: the same as ``spo nodesync ...``."""

import sys

from nodesync.command.nodesync import main

sys.exit(main(sys.argv[1:]))
