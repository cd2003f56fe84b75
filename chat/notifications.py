"""Changes the REST API commits that live delivery must hear about, without a layer cycle.

The REST handlers (:mod:`chat.api`) must not import the gateway, yet a participant removed, a
message deleted or a read position moved over REST has to reach the open WebSockets at once.
So REST reports each committed change to the app's :class:`Notifications`
(``AppState.notifications``), and whoever delivers live — the gateway, registering in
``open_gateway`` — listens there. With no listener (an app without the gateway) a
notification changes nothing.

Listeners run synchronously, right after the commit, and must not block; a listener that
raises is logged and skipped, so it never fails the request whose change already committed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from chat.domain.messages import Message

log = logging.getLogger(__name__)

ParticipantsChanged = Callable[[int, int, bool], None]
"""``(event_id, user_id, present)``: a participant was added (``present``) or removed."""

MessageChanged = Callable[[Message], None]
"""The message as it now reads, after an edit or a (soft) delete."""

ReadMoved = Callable[[int, int, int], None]
"""``(user_id, event_id, unread)``: the user's read position moved; their exact new count."""

StatusChanged = Callable[[int, str], None]
"""``(event_id, status)``: the event's status changed (``CANCELED``, ``DONE``, ...)."""

_Listener = TypeVar("_Listener", ParticipantsChanged, MessageChanged, ReadMoved, StatusChanged)


@dataclass(slots=True)
class Notifications:
    """Listener lists for the changes REST commits; each ``on_*`` returns its unregister."""

    _participants: list[ParticipantsChanged] = field(default_factory=list)
    _messages: list[MessageChanged] = field(default_factory=list)
    _reads: list[ReadMoved] = field(default_factory=list)
    _statuses: list[StatusChanged] = field(default_factory=list)

    def on_participants_changed(self, listener: ParticipantsChanged) -> Callable[[], None]:
        return _register(self._participants, listener)

    def on_message_changed(self, listener: MessageChanged) -> Callable[[], None]:
        return _register(self._messages, listener)

    def on_read_moved(self, listener: ReadMoved) -> Callable[[], None]:
        return _register(self._reads, listener)

    def on_status_changed(self, listener: StatusChanged) -> Callable[[], None]:
        return _register(self._statuses, listener)

    def participants_changed(self, event_id: int, user_id: int, *, present: bool) -> None:
        """A participant add (``present``) or removal has committed."""
        for listener in list(self._participants):
            _call(listener, event_id, user_id, present)

    def message_changed(self, message: Message) -> None:
        """An edit or delete of ``message`` has committed; ``message`` is how it now reads."""
        for listener in list(self._messages):
            _call(listener, message)

    def read_moved(self, user_id: int, event_id: int, unread: int) -> None:
        """The user's read position in the event moved; ``unread`` is their exact new count."""
        for listener in list(self._reads):
            _call(listener, user_id, event_id, unread)

    def status_changed(self, event_id: int, status: str) -> None:
        """The event's status change has committed (a CANCELED event's chat is read-only)."""
        for listener in list(self._statuses):
            _call(listener, event_id, status)


def _register(listeners: list[_Listener], listener: _Listener) -> Callable[[], None]:
    listeners.append(listener)

    def unregister() -> None:
        if listener in listeners:
            listeners.remove(listener)

    return unregister


def _call(listener: Callable[..., None], *args: object) -> None:
    try:
        listener(*args)
    except Exception:  # the change has committed: a listener's bug must not fail the request
        log.exception("notification listener %r failed", listener)
