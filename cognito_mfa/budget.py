"""The site's budget of calls to Amazon Cognito, per quota category, shared by every process.

Cognito meters request rates per AWS account and Region, pooled over all user pools, in
categories (``UserResourceUpdate``: 25 requests/s and not adjustable). Past a quota it answers
``TooManyRequestsException`` at random, so a storm of enrollments fails the very users who
already scanned their QR code. The budget turns the quota into finished enrollments instead:

- each category is a GCRA bucket (a token bucket kept as one "theoretical arrival time"):
  ``rate`` calls per second, at most one second's worth at once;
- *finishing* calls (a verify, the preference call that completes it) may fill the whole
  second; other calls (starts) only ``1 - reserve`` of it, so once starts have used their
  share, the rest is left to the users who are finishing. A start never takes a finishing
  slot, and finishing calls, admitted first, keep starts out while they wait;
- a call refused sends nothing: :class:`~cognito_mfa.exceptions.CallBudgetExhausted` (a 429
  ``throttled``) says when a slot frees;
- an endpoint asks before any of its work (``cognito_mfa.throttling.CallBudgetThrottle``,
  :meth:`CallBudget.admit`): a request admitted takes its call's slot then, and the call it
  was admitted for (a start's first ``AssociateSoftwareToken``, a verify's
  ``VerifySoftwareToken``) uses that slot instead of being asked again, so it is never
  refused after the request's work; a slot the request does not use (it ended before its
  call) is given back when it ends, unless a call was admitted after it (:func:`admissions`);
- when Cognito throttles anyway (another application spends the account's quota), the rate
  is halved for every process (at most once a second, down to a tenth) and grows back by a
  twentieth of the configured rate per second: additive increase, multiplicative decrease.

With a Redis cache the state lives in Redis and each decision is one Lua script, atomic
across processes and hosts, timed by Redis's own clock. With any other cache the budget holds
per process (system check ``cognito_mfa.W003``).
"""

from __future__ import annotations

import contextvars
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from django.conf import settings
from django.core.cache import caches

from . import exceptions as exc
from .conf import DEFAULT_CALL_BUDGET_RATES, app_settings

logger = logging.getLogger(__name__)

USER_RESOURCE_UPDATE = "UserResourceUpdate"
USER_READ = "UserRead"
USER_AUTHENTICATION = "UserAuthentication"

# Cognito's operation categories for every operation the app calls ("Quotas in Amazon
# Cognito"). An operation missing here is not charged: the boundary test keeps this complete.
CATEGORY_OF: dict[str, str] = {
    "AssociateSoftwareToken": USER_RESOURCE_UPDATE,
    "VerifySoftwareToken": USER_RESOURCE_UPDATE,
    "SetUserMFAPreference": USER_RESOURCE_UPDATE,
    "AdminSetUserMFAPreference": USER_RESOURCE_UPDATE,
    "AdminDeleteSoftwareToken": USER_RESOURCE_UPDATE,
    "GetUser": USER_READ,
    "AdminGetUser": USER_READ,
    "InitiateAuth": USER_AUTHENTICATION,
    "RespondToAuthChallenge": USER_AUTHENTICATION,
}

# The default rates are settings' defaults, so they live with the settings.
DEFAULT_RATES = DEFAULT_CALL_BUDGET_RATES

# The bucket holds one second of calls; a burst can never exceed a second's rate.
WINDOW_S = 1.0
# Back-off after a TooManyRequestsException: the rate is multiplied by DECREASE (at most once
# per HOLD_S, so one burst of throttled answers counts once), never below MIN_FACTOR of the
# configured rate, and grows back by INCREASE_PER_S of it every second.
DECREASE = 0.5
MIN_FACTOR = 0.1
INCREASE_PER_S = 0.05
HOLD_S = 1.0
# Refused starts are told to come back one after the other, spaced by the rate starts get,
# instead of all at once a second later (a crowd of retries would cost every process CPU
# and come back to the same refusal): the n-th refused start waits about n / that rate
# seconds, at most MAX_SPREAD_S.
MAX_SPREAD_S = 30.0

REDIS_BACKENDS = (
    "django.core.cache.backends.redis.RedisCache",
    "django_redis.cache.RedisCache",
)

_KEY = "cognito_mfa:call_budget:{category}:{part}"

# One decision, atomic in Redis. KEYS: the bucket's arrival time, the back-off state, the
# refused starts' queue. ARGV: mode ("acquire", "check" or "throttled"), rate, the fill this
# call may reach (seconds), the back-off constants, whether a refusal queues (starts),
# MAX_SPREAD_S. "check" is "acquire" without taking the slot: the bucket is only read (a
# refused start still takes its place in the queue, so its Retry-After is the charge's). An
# admitted call also returns the bucket's fill after it (when its slot drains) and the
# arrival time it stored. "give_back" (ARGV: the interval, that stored arrival time) takes
# the slot back out only while no call was admitted after it: a slot further down the
# bucket is never shortened. Numbers go back as strings: Redis turns Lua numbers into
# integers.
_SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
if ARGV[1] == 'give_back' then
  local stored = redis.call('GET', KEYS[1])
  if stored == ARGV[3] then
    local tat = math.max(now, tonumber(stored) - tonumber(ARGV[2]))
    redis.call('SET', KEYS[1], string.format('%.6f', tat), 'PX',
      math.ceil((tat - now) * 1000) + 1000)
  end
  return {1, '0', '1'}
end
local rate = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local decrease, min_factor = tonumber(ARGV[4]), tonumber(ARGV[5])
local increase, hold = tonumber(ARGV[6]), tonumber(ARGV[7])
local factor, since = 1.0, nil
local state = redis.call('HMGET', KEYS[2], 'factor', 'since')
if state[1] then
  since = tonumber(state[2])
  factor = math.min(1.0, tonumber(state[1]) + increase * math.max(0, now - since))
end
if ARGV[1] == 'throttled' then
  if since == nil or now - since >= hold then
    factor = math.max(min_factor, factor * decrease)
    redis.call('HSET', KEYS[2], 'factor', tostring(factor), 'since', string.format('%.6f', now))
    redis.call('EXPIRE', KEYS[2], math.ceil((1.0 - factor) / increase) + 1)
  end
  return {0, '0', tostring(factor)}
end
local interval = 1.0 / (rate * factor)
local stored = tonumber(redis.call('GET', KEYS[1]) or '0')
local tat = math.max(stored, now)
local fill = tat + interval - now
if fill > limit + 1e-9 then
  local wait = fill - limit
  if ARGV[8] == '1' then
    local queued = math.max(tonumber(redis.call('GET', KEYS[3]) or '0'), now + wait)
    queued = math.min(queued + 1.0 / (rate * factor * limit), now + tonumber(ARGV[9]))
    redis.call('SET', KEYS[3], string.format('%.6f', queued), 'PX',
      math.ceil((queued - now) * 1000) + 1000)
    wait = queued - now
  end
  return {0, tostring(wait), tostring(factor)}
end
local mark = ''
if ARGV[1] == 'acquire' then
  mark = string.format('%.6f', tat + interval)
  redis.call('SET', KEYS[1], mark, 'PX', math.ceil(fill * 1000) + 1000)
end
return {1, '0', tostring(factor), tostring(fill), mark}
"""


@dataclass(frozen=True)
class Decision:
    admitted: bool
    wait_s: float  # until this call would be admitted (0 when admitted)
    factor: float  # the share of the configured rate in force (1.0 unless backing off)
    fill_s: float = 0.0  # admitted: how long until this call's slot drains from the bucket
    mark: str = ""  # acquired: the arrival time stored, which a give-back compares


class LocalState:
    """The same decisions as the Redis script, kept in this process (any non-Redis cache)."""

    errors: tuple[type[BaseException], ...] = ()

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._tat: dict[str, float] = {}
        self._backoff: dict[str, tuple[float, float]] = {}
        self._queue: dict[str, float] = {}

    def _factor(self, category: str, now: float) -> tuple[float, float | None]:
        state = self._backoff.get(category)
        if state is None:
            return 1.0, None
        factor, since = state
        return min(1.0, factor + INCREASE_PER_S * max(0.0, now - since)), since

    def decide(self, category: str, mode: str, rate: float, limit: float) -> Decision:
        with self._lock:
            now = self.clock()
            factor, since = self._factor(category, now)
            if mode == "throttled":
                if since is None or now - since >= HOLD_S:
                    factor = max(MIN_FACTOR, factor * DECREASE)
                    self._backoff[category] = (factor, now)
                return Decision(False, 0.0, factor)
            interval = 1.0 / (rate * factor)
            tat = max(self._tat.get(category, 0.0), now)
            fill = tat + interval - now
            if fill > limit + 1e-9:  # float sums: 5 x 0.1 s must fit in 0.5 s
                wait = fill - limit
                if limit < WINDOW_S:  # a start: queue it behind the starts refused before
                    queued = max(self._queue.get(category, 0.0), now + wait)
                    queued = min(queued + 1.0 / (rate * factor * limit), now + MAX_SPREAD_S)
                    self._queue[category] = queued
                    wait = queued - now
                return Decision(False, wait, factor)
            if mode != "acquire":
                return Decision(True, 0.0, factor, fill)
            self._tat[category] = tat + interval
            return Decision(True, 0.0, factor, fill, repr(tat + interval))

    def give_back(self, category: str, interval: float, mark: str) -> None:
        with self._lock:
            stored = self._tat.get(category)
            if stored is not None and repr(stored) == mark:  # nothing admitted after it
                self._tat[category] = max(self.clock(), stored - interval)


class RedisState:
    """Decisions made by one Lua script in the Redis server behind a Django cache alias."""

    def __init__(self, alias: str) -> None:
        import redis

        location = settings.CACHES[alias].get("LOCATION") or "redis://127.0.0.1:6379/0"
        if isinstance(location, list | tuple):
            location = location[0]  # Django's RedisCache writes to the first server
        elif "," in location:
            location = location.split(",")[0]
        self.alias = alias
        self.client = redis.Redis.from_url(location.strip())
        self.script = self.client.register_script(_SCRIPT)
        self.errors: tuple[type[BaseException], ...] = (redis.RedisError,)

    def _keys(self, category: str) -> list[str]:
        cache = caches[self.alias]
        return [
            cache.make_key(_KEY.format(category=category, part=part))
            for part in ("tat", "backoff", "queue")
        ]

    def decide(self, category: str, mode: str, rate: float, limit: float) -> Decision:
        args: list[str | float] = [
            mode,
            repr(rate),
            repr(limit),
            DECREASE,
            MIN_FACTOR,
            INCREASE_PER_S,
            HOLD_S,
            "1" if limit < WINDOW_S else "0",
            MAX_SPREAD_S,
        ]
        admitted, wait_s, factor, *acquired = self.script(keys=self._keys(category), args=args)
        decision = Decision(bool(int(admitted)), float(wait_s), float(factor))
        if acquired:
            fill, mark = acquired
            decision = replace(decision, fill_s=float(fill), mark=mark.decode())
        return decision

    def give_back(self, category: str, interval: float, mark: str) -> None:
        self.script(keys=self._keys(category), args=["give_back", repr(interval), mark])


def is_shared_cache(alias: str) -> bool:
    """Tell whether the budget kept behind ``alias`` is shared between processes (Redis)."""
    config = settings.CACHES.get(alias) or {}
    return config.get("BACKEND") in REDIS_BACKENDS


@dataclass(frozen=True)
class _Admission:
    """A slot a request took when it was admitted, for the call it is about to make."""

    budget: CallBudget  # the one that admitted it (settings may rebuild the process's)
    operation: str
    drains_at: float  # the budget's clock: once past, the slot has left the bucket
    interval: float  # what the slot added to the bucket
    mark: str  # the bucket's arrival time once it was added (Decision.mark)


# The slots taken by the request under way (:func:`admissions`); None outside of a request.
_admissions: contextvars.ContextVar[list[_Admission] | None] = contextvars.ContextVar(
    "cognito_mfa_admissions", default=None
)


@contextmanager
def admissions() -> Iterator[None]:
    """One request's admissions (:meth:`CallBudget.admit`): its call uses the slot taken
    when it was admitted; a slot still unused when the block ends is given back."""
    held: list[_Admission] = []
    token = _admissions.set(held)
    try:
        yield
    finally:
        _admissions.reset(token)
        for admission in held:
            admission.budget.give_back(admission)


# Set by callers that would rather wait for a slot than be refused (the admin refresh's
# workers): the longest wait, in seconds. A context variable, so each thread has its own.
_patience: contextvars.ContextVar[float] = contextvars.ContextVar("cognito_mfa_patience", default=0)


@contextmanager
def waiting(seconds: float) -> Iterator[None]:
    """Within this block, a call the budget refuses waits up to ``seconds`` for a slot."""
    token = _patience.set(seconds)
    try:
        yield
    finally:
        _patience.reset(token)


class CallBudget:
    """The budget as the boundary uses it: :meth:`charge` before a call, :meth:`throttled`
    after Cognito refused one."""

    def __init__(
        self,
        state: LocalState | RedisState,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.state = state
        self.sleep = sleep
        self.clock = clock

    def _decide(self, category: str, mode: str, limit: float) -> Decision | None:
        rate = app_settings.CALL_BUDGET_RATES.get(category)
        if rate is None:
            return None  # this category is not budgeted
        try:
            return self.state.decide(category, mode, float(rate), limit)
        except self.state.errors as error:
            # The budget protects Cognito's quota; it must not take the site down with Redis.
            # Unbudgeted, a storm meets Cognito's own throttling (503, nothing changed).
            logger.warning("cognito_mfa: call budget unavailable (%s)", type(error).__name__)
            return None

    @staticmethod
    def _limit(finishing: bool) -> float:
        """How full the bucket may be after this call: finishing calls may use the reserve."""
        return WINDOW_S if finishing else WINDOW_S * (1 - app_settings.CALL_BUDGET_RESERVE)

    def charge(self, operation: str, *, finishing: bool = False, patience: float = 0) -> None:
        """Admit one ``operation`` call or raise CallBudgetExhausted (nothing was sent).

        ``patience``: seconds this call may wait for a slot (at least the ``waiting`` block's).
        """
        category = CATEGORY_OF.get(operation)
        if category is None or self._admitted_for(operation):
            return
        limit = self._limit(finishing)
        deadline = self.clock() + max(patience, _patience.get())
        while True:
            decision = self._decide(category, "acquire", limit)
            if decision is None or decision.admitted:
                return
            left = deadline - self.clock()
            if decision.wait_s > left:
                logger.info("cognito_mfa: call budget of %s refused %s", category, operation)
                raise exc.CallBudgetExhausted(retry_after=math.ceil(decision.wait_s))
            self.sleep(decision.wait_s)

    def _admitted_for(self, operation: str) -> bool:
        """Use the slot the request under way took for ``operation`` when it was admitted,
        if it has one that has not drained yet (a call made later is charged afresh)."""
        held = _admissions.get()
        if not held:
            return False
        for admission in held:
            if admission.operation == operation:
                held.remove(admission)
                return self.clock() < admission.drains_at
        return False

    def admit(self, operation: str, *, finishing: bool = False) -> None:
        """Take the slot of the ``operation`` call the request under way is about to make,
        or raise CallBudgetExhausted (the same decision and ``Retry-After`` as :meth:`charge`).

        Inside :func:`admissions` the call then uses this slot, so it cannot be refused once
        the request's work is done; outside of it, this is :meth:`check`.
        """
        held = _admissions.get()
        category = CATEGORY_OF.get(operation)
        rate = app_settings.CALL_BUDGET_RATES.get(category) if category is not None else None
        if held is None or category is None or rate is None:
            self.check(operation, finishing=finishing)
            return
        asked_at = self.clock()  # before the round trip: the slot drains no later than this
        decision = self._ask_early(category, operation, "acquire", finishing)
        if decision is None:
            return
        held.append(
            _Admission(
                self,
                operation,
                drains_at=asked_at + decision.fill_s,
                interval=1.0 / (float(rate) * decision.factor),
                mark=decision.mark,
            )
        )

    def give_back(self, admission: _Admission) -> None:
        """Return a slot the request took and did not use, while it is the last one in the
        bucket. Once drained, giving it back would hand out a slot that was never taken; once
        another call was admitted after it, it would shorten that call's slot: it stays spent.
        """
        if self.clock() >= admission.drains_at:
            return
        category = CATEGORY_OF[admission.operation]
        try:
            self.state.give_back(category, admission.interval, admission.mark)
        except self.state.errors as error:
            logger.warning("cognito_mfa: call budget unavailable (%s)", type(error).__name__)

    def check(self, operation: str, *, finishing: bool = False) -> None:
        """Raise CallBudgetExhausted if ``operation`` would be refused now; take nothing.

        One decision (one Redis script), the same as :meth:`charge`'s first: a refusal
        carries the same ``Retry-After`` (a refused start joins the same queue). An admitted
        check reserves nothing: the call is charged when it is made.
        """
        category = CATEGORY_OF.get(operation)
        if category is not None:
            self._ask_early(category, operation, "check", finishing)

    def _ask_early(
        self, category: str, operation: str, mode: str, finishing: bool
    ) -> Decision | None:
        """The decision of :meth:`admit` or :meth:`check`; CallBudgetExhausted if refused."""
        decision = self._decide(category, mode, self._limit(finishing))
        if decision is not None and not decision.admitted:
            logger.info("cognito_mfa: call budget of %s refused %s early", category, operation)
            raise exc.CallBudgetExhausted(retry_after=math.ceil(decision.wait_s))
        return decision

    def throttled(self, operation: str) -> None:
        """Cognito throttled ``operation``: lower its category's rate for every process."""
        category = CATEGORY_OF.get(operation)
        if category is not None:
            decision = self._decide(category, "throttled", WINDOW_S)
            if decision is not None:
                logger.warning(
                    "cognito_mfa: Cognito throttled %s; %s budget now at %.0f%%",
                    operation,
                    category,
                    decision.factor * 100,
                )


_lock = threading.Lock()
_budget: CallBudget | None = None


def budget_cache_alias() -> str:
    return str(app_settings.CALL_BUDGET_CACHE)


def get_budget() -> CallBudget:
    """Return the process's budget, built from settings on first use."""
    global _budget
    budget = _budget
    if budget is None:
        with _lock:
            budget = _budget
            if budget is None:
                alias = budget_cache_alias()
                state: Any = RedisState(alias) if is_shared_cache(alias) else LocalState()
                budget = _budget = CallBudget(state)
    return budget


def reset_budget() -> None:
    """Forget the process's budget (on ``setting_changed`` and in tests)."""
    global _budget
    with _lock:
        _budget = None
