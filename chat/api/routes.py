"""All REST operations of the service, gathered under ``/v1``.

Every module's operations are wrapped by :func:`chat.api.history.relay_after_commit`, so the
event-history records a request staged reach ScyllaDB right after its commit (a request that
staged nothing pays nothing).
"""

from __future__ import annotations

from chat.api import events, history, me, messages, payments, slots, users
from chat.api.endpoint import Api


def build_api() -> Api:
    api = Api(prefix="/v1")
    for module in (users, events, history, messages, me, slots, payments):
        api.include(history.relay_after_commit(module.api))
    return api
