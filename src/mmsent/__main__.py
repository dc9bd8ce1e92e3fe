"""`python -m mmsent`: the same as the `mmsent` command."""

import sys

from mmsent.cli.main import main

sys.exit(main())
