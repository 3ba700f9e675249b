"""`botwatch.sdk`, the Python SDK's public path: the same module as botwatch.client.sdk."""

import sys

from .client import sdk as _sdk

sys.modules[__name__] = _sdk
