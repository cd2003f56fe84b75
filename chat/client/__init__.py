"""The reference Python client of the chat protocol (async, typed, on ``websockets``).

:class:`ChatClient` connects (token in the upgrade header or a ``hello`` frame), reconnects
with jittered back-off, resumes every subscription from its cursor, resends unanswered
requests (a ``send`` keeps its ``client_msg_id``, so it is stored once), backs off on
``rate_limited`` and ``unavailable``, and yields every server frame as its typed model.
:class:`Timeline` orders an event's messages as the store does. docs/clients.md describes
the algorithm for clients in other languages.
"""

from chat.client.backoff import DEFAULT_BACKOFF, Backoff
from chat.client.connection import ChatClient, TokenProvider
from chat.client.errors import (
    AuthenticationFailed,
    ClientClosed,
    ConnectionLost,
    FrameTooLarge,
    RequestFailed,
)
from chat.client.events import Disconnected, Event, UnknownFrame, parse_frame
from chat.client.session import ClientSession, Completion, Phase, ReconnectPlan
from chat.client.timeline import Timeline, order_key
from chat.gateway.server_frames import (
    Ack,
    ErrorFrame,
    HistoryPage,
    MessagePosted,
    MessageUpdated,
    Ok,
    PresenceChanged,
    ReactionChanged,
    ServerFrame,
    ServerPing,
    ServerPong,
    Subscribed,
    TypingChanged,
    UnreadCount,
    Unsubscribed,
    Welcome,
)

__all__ = [
    "DEFAULT_BACKOFF",
    "Ack",
    "AuthenticationFailed",
    "Backoff",
    "ChatClient",
    "ClientClosed",
    "ClientSession",
    "Completion",
    "ConnectionLost",
    "Disconnected",
    "ErrorFrame",
    "Event",
    "FrameTooLarge",
    "HistoryPage",
    "MessagePosted",
    "MessageUpdated",
    "Ok",
    "Phase",
    "PresenceChanged",
    "ReactionChanged",
    "ReconnectPlan",
    "RequestFailed",
    "ServerFrame",
    "ServerPing",
    "ServerPong",
    "Subscribed",
    "Timeline",
    "TokenProvider",
    "TypingChanged",
    "UnknownFrame",
    "UnreadCount",
    "Unsubscribed",
    "Welcome",
    "order_key",
    "parse_frame",
]
