import sys

from mpcnode.daemon.node_cli import main

sys.exit(main())
