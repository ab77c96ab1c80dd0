"""Client-side request pacing: an optional fixed rate plus adaptive slow-down after 429s."""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]

# After a 429 the rate drops to this fraction of what was being sent, at most once per window,
# then creeps back up per success so a server-side limit is approached again only slowly.
_DECREASE = 0.75
_CUT_WINDOW_S = 1.0
_RECOVERY_PER_SUCCESS = 0.003
_MIN_RPS = 0.2


class AdaptiveRateLimiter:
    """Spaces request starts (GCRA-style) and honours server ``Retry-After`` pauses globally."""

    def __init__(self, max_rps: float | None, clock: Clock, sleep: Sleep) -> None:
        self.max_rps = max_rps
        self.rate: float | None = max_rps
        self._clock = clock
        self._sleep = sleep
        self._next_slot = 0.0
        self._paused_until = 0.0
        self._last_cut = float("-inf")
        self._starts: deque[float] = deque(maxlen=64)

    async def acquire(self) -> None:
        now = self._clock()
        slot = max(now, self._paused_until)
        if self.rate is not None:
            slot = max(slot, self._next_slot)
            self._next_slot = slot + 1.0 / self.rate
        if slot > now:
            await self._sleep(slot - now)
        self._starts.append(max(slot, self._clock()))

    def observed_rps(self) -> float:
        if len(self._starts) < 2:
            return 1.0
        span = self._starts[-1] - self._starts[0]
        return (len(self._starts) - 1) / span if span > 0 else float(len(self._starts))

    def on_rate_limited(self, pause_s: float | None) -> None:
        now = self._clock()
        if pause_s:
            self._paused_until = max(self._paused_until, now + pause_s)
        if now - self._last_cut < _CUT_WINDOW_S:
            return  # one cut per burst: concurrent requests all see the same 429 wave
        self._last_cut = now
        current = self.rate if self.rate is not None else self.observed_rps()
        self.rate = max(_MIN_RPS, min(current, self.observed_rps()) * _DECREASE)

    def on_success(self) -> None:
        if self.rate is None:
            return
        self.rate *= 1.0 + _RECOVERY_PER_SUCCESS
        if self.max_rps is not None:
            self.rate = min(self.rate, self.max_rps)
