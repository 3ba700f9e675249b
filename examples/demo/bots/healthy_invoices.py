"""Demo bot: books a few invoices and always succeeds."""

import random
import time

for n in range(random.randint(2, 4)):
    print(f"booked invoice INV-{random.randint(10000, 99999)}", flush=True)
    time.sleep(random.uniform(0.2, 0.6))
print("done: all invoices booked")
