-- Bookable slots offered by business users. A booking flips is_available and records the
-- event it created, in one transaction with the event (see chat/store/pg/slots.py).
CREATE TABLE open_slots (
    id               BIGSERIAL PRIMARY KEY,
    business_user_id BIGINT        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    service_type     VARCHAR(100)  NOT NULL CHECK (length(btrim(service_type)) > 0),
    title            VARCHAR(200)  NOT NULL CHECK (length(btrim(title)) > 0),
    description      TEXT,
    start_time       TIMESTAMPTZ   NOT NULL,
    duration_minutes INT           NOT NULL DEFAULT 60 CHECK (duration_minutes BETWEEN 1 AND 1440),
    price            DECIMAL(10,2) CHECK (price IS NULL OR price >= 0),
    currency         VARCHAR(3)    NOT NULL DEFAULT 'KRW' CHECK (currency ~ '^[A-Z]{3}$'),
    region           VARCHAR(50),
    is_available     BOOLEAN       NOT NULL DEFAULT TRUE,
    booked_event_id  BIGINT        REFERENCES events (id) ON DELETE SET NULL,
    booked_by        BIGINT        REFERENCES users (id) ON DELETE SET NULL,
    created_at       TIMESTAMPTZ   NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ   NOT NULL DEFAULT now(),
    deleted_at       TIMESTAMPTZ
);

CREATE INDEX open_slots_business_idx ON open_slots (business_user_id);
CREATE INDEX open_slots_start_time_idx ON open_slots (start_time);
-- The search for available slots (by region, soonest first) reads only this index.
CREATE INDEX open_slots_available_region_idx ON open_slots (region, start_time, id)
    WHERE is_available AND deleted_at IS NULL;

CREATE TRIGGER open_slots_set_updated_at BEFORE UPDATE ON open_slots
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
