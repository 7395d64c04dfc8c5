"""Capped exponential back-off for the loops that wait out a broker or database outage."""

import random


class Backoff:
    def __init__(self, first: float = 0.1, cap: float = 5.0) -> None:
        self.first, self.cap = first, cap
        self.reset()

    def reset(self) -> None:
        self._next = self.first

    def next(self) -> float:
        delay = self._next
        self._next = min(self._next * 2, self.cap)
        return delay * random.uniform(0.8, 1.2)  # jitter: restarted services don't retry in lockstep
