"""`python -m botwatch.deliver`, the detached deliverer's public entry point (botwatch.client.deliver)."""

import sys

from .client.deliver import main

if __name__ == "__main__":
    sys.exit(main())
