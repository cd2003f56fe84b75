"""The chat stores a request handler needs, read from the application state in one place."""

from __future__ import annotations

from chat.state import AppState
from chat.store.cql.event_history import EventHistory
from chat.store.cql.message_history import MessageHistory
from chat.store.cql.messages import MessageStore
from chat.store.cql.unread import UnreadStore


def event_history(state: AppState) -> EventHistory:
    return state.chat.event_history


def message_history(state: AppState) -> MessageHistory:
    return state.chat.history


def unread(state: AppState) -> UnreadStore:
    return state.chat.unread


def messages(state: AppState) -> MessageStore:
    return state.chat.messages
