"""Demo bot: drives a supplier portal whose screens drift; fails now and then like UiPath does."""

import random
import sys
import time

print("opening supplier portal", flush=True)
time.sleep(random.uniform(0.5, 1.5))
roll = random.random()
if roll < 0.35:
    print("UiPath.Core.Activities.SelectorNotFoundException: Cannot find the UI element corresponding to "
          "this selector: <webctrl id='btnDownloadOrders' tag='BUTTON' />", file=sys.stderr)
    sys.exit(1)
if roll < 0.45:
    print("Logon failed for user 'svc-portal': password expired", file=sys.stderr)
    sys.exit(1)
print("downloaded 12 orders")
