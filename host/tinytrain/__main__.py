import sys

from tinytrain.commands.cli import main

sys.exit(main())
