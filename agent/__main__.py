import sys

from botwatch.cli import main

sys.exit(main())
