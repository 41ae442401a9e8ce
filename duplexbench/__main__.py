import sys

from duplexbench.cli import main

sys.exit(main())
