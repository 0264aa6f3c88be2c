"""``python -m sepmamba_sb.hub export | check | push`` (:mod:`sepmamba_sb.hub.cli`)."""

import sys

from sepmamba_sb.hub.cli import main

sys.exit(main())
