import sys

from northstard.ops.cli import main

sys.exit(main())
