"""``python -m duplexbench.engines.browser SPEC.json OUT_DIR [--per-page K]``."""

import sys

from .engine import main

sys.exit(main())
