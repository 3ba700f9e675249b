"""Demo bot: builds a report that takes longer and longer."""

import random
import time

seconds = random.uniform(3, 7)
print(f"crunching numbers for {seconds:.1f}s", flush=True)
time.sleep(seconds)
print("report written")
