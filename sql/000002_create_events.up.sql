-- Events and who takes part. The status machine itself lives in chat/domain/events.py; the
-- CHECK constraints are the last line of defence against a state no code path should write.
CREATE TABLE events (
    id          BIGSERIAL PRIMARY KEY,
    title       VARCHAR(200) NOT NULL CHECK (length(btrim(title)) > 0),
    description TEXT,
    start_time  TIMESTAMPTZ  NOT NULL,
    end_time    TIMESTAMPTZ  NOT NULL,
    location    VARCHAR(200),
    creator_id  BIGINT       NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    status      VARCHAR(20)  NOT NULL DEFAULT 'PROPOSED'
                CHECK (status IN ('PROPOSED', 'CONFIRMED', 'DONE', 'CANCELED')),
    created_at  TIMESTAMPTZ  NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ  NOT NULL DEFAULT now(),
    deleted_at  TIMESTAMPTZ,
    CONSTRAINT events_end_after_start CHECK (end_time > start_time)
);

CREATE INDEX events_creator_idx ON events (creator_id);
CREATE INDEX events_start_time_idx ON events (start_time);
CREATE INDEX events_status_idx ON events (status);
CREATE INDEX events_creator_status_idx ON events (creator_id, status);
-- The automatic CONFIRMED -> DONE sweep looks only at confirmed events by end time.
CREATE INDEX events_confirmed_end_idx ON events (end_time) WHERE status = 'CONFIRMED';

CREATE TRIGGER events_set_updated_at BEFORE UPDATE ON events
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE event_participants (
    event_id     BIGINT      NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    user_id      BIGINT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    confirmed    BOOLEAN     NOT NULL DEFAULT FALSE,
    confirmed_at TIMESTAMPTZ,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, user_id),
    CONSTRAINT event_participants_confirmed_at CHECK (confirmed = (confirmed_at IS NOT NULL))
);

CREATE INDEX event_participants_user_idx ON event_participants (user_id, event_id);
