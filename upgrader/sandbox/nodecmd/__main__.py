import sys

from upgrader.sandbox.nodecmd import main

sys.exit(main())
