import sys

from mpcnode.cli import main

sys.exit(main())
