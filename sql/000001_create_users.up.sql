-- Users: people and businesses. Soft-deleted rows keep their id (events and payments refer to
-- them) but free their phone and email for reuse, hence the partial unique indexes.
CREATE FUNCTION set_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

CREATE TABLE users (
    id                BIGSERIAL PRIMARY KEY,
    phone             VARCHAR(20)  NOT NULL CHECK (phone ~ '^\+?[0-9]{6,15}$'),
    email             VARCHAR(255) CHECK (email IS NULL OR email ~ '^[^@\s]+@[^@\s]+$'),
    name              VARCHAR(100) NOT NULL CHECK (length(btrim(name)) > 0),
    display_name      VARCHAR(100),
    profile_image_url TEXT,
    region            VARCHAR(50),
    interests         TEXT[]       NOT NULL DEFAULT '{}',
    role              VARCHAR(20)  NOT NULL DEFAULT 'USER' CHECK (role IN ('USER', 'BUSINESS')),
    is_active         BOOLEAN      NOT NULL DEFAULT TRUE,
    created_at        TIMESTAMPTZ  NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ  NOT NULL DEFAULT now(),
    deleted_at        TIMESTAMPTZ
);

CREATE UNIQUE INDEX users_phone_key ON users (phone) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX users_email_key ON users (lower(email))
    WHERE deleted_at IS NULL AND email IS NOT NULL;
CREATE INDEX users_region_idx ON users (region) WHERE deleted_at IS NULL;
CREATE INDEX users_role_idx ON users (role) WHERE deleted_at IS NULL;

CREATE TRIGGER users_set_updated_at BEFORE UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
