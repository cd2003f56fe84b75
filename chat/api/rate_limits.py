"""REST rate limits: every request is charged to its client address, an authenticated one also
to its user, and a sign-up also to the sign-up quota of its address.

The address is charged first, before routing, body parsing or token checks, so a flood costs
the server a dictionary lookup per request; the user is charged by the operation once its token
is verified (:func:`charge_user`). Over a quota the answer is ``429`` problem+json with
``Retry-After`` and ``violated-policies``, and nothing else runs.

Every limited response (``2xx`` to ``5xx``) says where the client stands, in the fields of
draft-ietf-httpapi-ratelimit-headers-11 (Structured Field lists, one item per policy charged)::

    RateLimit-Policy: "address";q=300;w=60, "user";q=120;w=60
    RateLimit: "address";r=297;t=1, "user";r=118;t=1

``q`` units per ``w`` seconds is a token bucket of ``q`` refilled evenly over ``w``; ``r`` is the
whole units left and ``t`` the seconds until one more comes back, so the client cannot use more
than ``r`` within ``t``. On a 429, ``Retry-After`` equals that ``t`` of the violated policy.

The client address is the socket's peer; behind reverse proxies listed in
``CHAT_TRUSTED_PROXIES``, uvicorn's ``ProxyHeadersMiddleware`` (installed before this one) has
already replaced it with the first address of ``X-Forwarded-For`` not in that list, walking from
the right. IPv6 clients are charged per ``CHAT_REST_IPV6_PREFIX`` network, since one site holds
a whole /64. Every path of the main listener counts, probes and ``/metrics`` included (a
probe every few seconds is far below any quota); the admin listener (``CHAT_ADMIN_PORT``),
reachable only by operators, has no limits.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chat.api.problems import problem_response
from chat.config import Settings
from chat.errors import RateLimited
from chat.metrics import Metrics
from chat.ratelimit import BucketTable, Decision, Quota

SIGNUP = ("POST", "/v1/users")
"""The operation charged to the sign-up quota of its address (it creates a user and a token)."""

STATE_KEY = "rate_limit_charges"
FIELD_NAMES = (b"ratelimit-policy", b"ratelimit")

Key = TypeVar("Key", bound=Hashable)


@dataclass(frozen=True, slots=True)
class Policy:
    """A named quota; ``what`` says in a sentence what it counts (for the 429's detail)."""

    name: str
    quota: Quota
    what: str

    def policy_item(self) -> str:
        return f'"{self.name}";q={self.quota.units};w={self.quota.window_seconds}'


class Limiter(Generic[Key]):
    """One policy and the bounded table of buckets that enforces it."""

    def __init__(self, policy: Policy, max_keys: int) -> None:
        self.policy = policy
        self.table: BucketTable[Key] = BucketTable(policy.quota, max_keys)


def _limiter(name: str, units: int, window: int, what: str, max_keys: int) -> Limiter[Any] | None:
    """The limiter of a policy, or None when its quota is 0 (limit off)."""
    if units == 0:
        return None
    return Limiter(Policy(name, Quota(units, window), what), max_keys)


class RestRateLimits:
    """The REST limiter tables of one app, each bounded to ``CHAT_REST_RATE_LIMIT_MAX_KEYS``."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        keys = settings.rest_rate_limit_max_keys
        self.clock = clock
        self.ipv6_prefix = settings.rest_ipv6_prefix
        self.address: Limiter[str] | None = _limiter(
            "address",
            settings.rest_address_quota,
            settings.rest_address_window_seconds,
            "requests from your address",
            keys,
        )
        self.user: Limiter[int] | None = _limiter(
            "user",
            settings.rest_user_quota,
            settings.rest_user_window_seconds,
            "requests by this user",
            keys,
        )
        self.signup: Limiter[str] | None = _limiter(
            "signup",
            settings.rest_signup_quota,
            settings.rest_signup_window_seconds,
            "sign-ups from your address",
            keys,
        )

    def limiters(self) -> list[Limiter[Any]]:
        return [lim for lim in (self.address, self.user, self.signup) if lim is not None]

    def client_key(self, host: str | None) -> str:
        """The key an address is charged under: IPv4 as is, IPv6 by its site prefix."""
        if not host:
            return "unknown"
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return host[:64]  # not an IP (a Unix socket peer): one key per name
        if isinstance(ip, ipaddress.IPv6Address):
            if ip.ipv4_mapped is not None:
                return str(ip.ipv4_mapped)
            network = ipaddress.IPv6Network((ip, self.ipv6_prefix), strict=False)
            return str(network)
        return str(ip)


@dataclass(slots=True)
class Charges:
    """What one request was charged: the source of its response's RateLimit fields."""

    limits: RestRateLimits
    address_key: str
    metrics: Metrics | None
    decisions: list[tuple[Policy, Decision]] = field(default_factory=list)

    def charge(self, limiter: Limiter[Key] | None, key: Key) -> None:
        """Take one unit from ``key``'s bucket; RateLimited (429) when there is none."""
        if limiter is None:
            return
        decision = limiter.table.take(key, self.limits.clock())
        policy = limiter.policy
        self.decisions.append((policy, decision))
        if decision.allowed:
            return
        if self.metrics is not None:
            self.metrics.rest_rate_limited.labels(policy.name).inc()
        retry_after = max(1, math.ceil(decision.retry_after_seconds))
        quota = policy.quota
        # The draft's problem member for the policies whose quota was spent.
        violated: dict[str, Any] = {"violated-policies": [policy.name]}
        raise RateLimited(
            f"too many {policy.what}: at most {quota.units} per {quota.window_seconds} s; "
            f"retry in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
            **violated,
        )

    def charge_user(self, user_id: int) -> None:
        self.charge(self.limits.user, user_id)

    def fields(self) -> list[tuple[bytes, bytes]]:
        """The ``RateLimit-Policy`` and ``RateLimit`` header fields (none if nothing charged)."""
        if not self.decisions:
            return []
        policies = ", ".join(policy.policy_item() for policy, _ in self.decisions)
        limits = ", ".join(
            f'"{policy.name}";r={decision.remaining};t={math.ceil(decision.reset_seconds)}'
            for policy, decision in self.decisions
        )
        return [(FIELD_NAMES[0], policies.encode()), (FIELD_NAMES[1], limits.encode())]


def charge_user(request: Request, user_id: int) -> None:
    """Charge an authenticated request to its user's quota (RateLimited when it is spent).

    A request that did not pass through :class:`RateLimitMiddleware` is not charged.
    """
    charges = request.scope.get("state", {}).get(STATE_KEY)
    if isinstance(charges, Charges):
        charges.charge_user(user_id)


class RateLimitMiddleware:
    """Charges each HTTP request to its address (and sign-ups to the sign-up quota), answers
    429 when a quota is spent, and adds the RateLimit fields to every limited response.

    A pure ASGI middleware: it sees the request before routing and never buffers a body.
    """

    def __init__(self, app: ASGIApp, limits: RestRateLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        app_state = state.get("app")
        client = scope.get("client")
        charges = Charges(
            self.limits,
            self.limits.client_key(client[0] if client else None),
            getattr(app_state, "metrics", None),
        )
        state[STATE_KEY] = charges

        async def send_with_fields(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() not in FIELD_NAMES
                ]
                message = {**message, "headers": headers + charges.fields()}
            await send(message)

        try:
            charges.charge(self.limits.address, charges.address_key)
            if (scope["method"], scope["path"]) == SIGNUP:
                charges.charge(self.limits.signup, charges.address_key)
        except RateLimited as exc:
            await problem_response(exc, scope["path"])(scope, receive, send_with_fields)
            return
        await self.app(scope, receive, send_with_fields)
