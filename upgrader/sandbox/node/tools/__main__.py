"""``python -m upgrader.sandbox.node.tools TOOL ARGS...``: what every wrapper on a sandbox node runs.

:mod:`.dispatch` finds the tool's function (importing only its module) and runs it on the node the
wrapper baked into the environment.
"""

import sys

from upgrader.sandbox.node.tools.dispatch import run

sys.exit(run(sys.argv[1:]))
