-- Payments between two participants of an event. transaction_id is the client's idempotency
-- key: creating the same payment twice returns the first one.
CREATE TABLE payments (
    id             BIGSERIAL PRIMARY KEY,
    event_id       BIGINT        REFERENCES events (id) ON DELETE SET NULL,
    payer_id       BIGINT        NOT NULL REFERENCES users (id),
    receiver_id    BIGINT        NOT NULL REFERENCES users (id),
    amount         DECIMAL(10,2) NOT NULL CHECK (amount > 0),
    currency       VARCHAR(3)    NOT NULL DEFAULT 'KRW' CHECK (currency ~ '^[A-Z]{3}$'),
    status         VARCHAR(20)   NOT NULL DEFAULT 'PENDING'
                   CHECK (status IN ('PENDING', 'COMPLETED', 'REFUNDED', 'FAILED')),
    payment_method VARCHAR(50),
    transaction_id VARCHAR(100)  UNIQUE,
    metadata       JSONB         NOT NULL DEFAULT '{}'::jsonb,
    created_at     TIMESTAMPTZ   NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ   NOT NULL DEFAULT now(),
    CONSTRAINT payments_distinct_parties CHECK (payer_id <> receiver_id)
);

CREATE INDEX payments_event_idx ON payments (event_id);
CREATE INDEX payments_payer_idx ON payments (payer_id);
CREATE INDEX payments_receiver_idx ON payments (receiver_id);

CREATE TRIGGER payments_set_updated_at BEFORE UPDATE ON payments
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
