import sys

from pixeljax.cli import main

sys.exit(main())
