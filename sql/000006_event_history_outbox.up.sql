-- Outbox of event-history records. Each REST change to an event writes its history
-- record here in the SAME transaction as the change; a relay copies the rows to ScyllaDB's
-- event_history table and deletes them here only after the CQL write succeeded. change_id is
-- the CQL row's key (a timeuuid chosen in Python), so replaying a row rewrites the same row.
CREATE TABLE event_history_outbox (
    change_id   UUID PRIMARY KEY,
    event_id    BIGINT NOT NULL,
    changed_at  TIMESTAMPTZ NOT NULL,
    actor_id    BIGINT,
    actor_name  TEXT NOT NULL,
    change_type TEXT NOT NULL CHECK (change_type IN (
        'CREATED', 'UPDATED', 'PARTICIPANT_ADDED', 'PARTICIPANT_REMOVED',
        'PARTICIPANT_CONFIRMED', 'STATUS_CHANGED', 'SLOT_BOOKED', 'PAYMENT_CREATED',
        'PAYMENT_STATUS_CHANGED')),
    field_name  TEXT,
    old_value   TEXT,
    new_value   TEXT,
    ip_address  INET,
    user_agent  TEXT,
    metadata    JSONB NOT NULL DEFAULT '{}'::jsonb,
    staged_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The background relay drains oldest first; the history read relays one event's leftovers.
CREATE INDEX event_history_outbox_staged_idx ON event_history_outbox (staged_at);
CREATE INDEX event_history_outbox_event_idx ON event_history_outbox (event_id);
