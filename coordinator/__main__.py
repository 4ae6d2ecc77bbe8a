import sys

from coordinator.ceremony_cli import main

sys.exit(main())
