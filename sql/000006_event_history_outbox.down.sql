DROP TABLE IF EXISTS event_history_outbox;
