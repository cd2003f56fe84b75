"""All REST operations of the service, gathered under ``/v1``."""

from __future__ import annotations

from chat.api import events, payments, slots, users
from chat.api.endpoint import Api


def build_api() -> Api:
    api = Api(prefix="/v1")
    for module in (users, events, slots, payments):
        api.include(module.api)
    return api
