import sys

from swarmop.cli.main import main

sys.exit(main())
