-- OAuth tokens of linked accounts. Only ciphertext is stored (Fernet, key from
-- CHAT_OAUTH_ENCRYPTION_KEY): a database dump alone reveals no usable token.
CREATE TABLE oauth_tokens (
    id                  BIGSERIAL PRIMARY KEY,
    user_id             BIGINT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider            VARCHAR(50) NOT NULL CHECK (provider IN ('google', 'kakao', 'apple', 'naver')),
    access_token_cipher BYTEA       NOT NULL,
    refresh_token_cipher BYTEA,
    expires_at          TIMESTAMPTZ,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (user_id, provider)
);

CREATE TRIGGER oauth_tokens_set_updated_at BEFORE UPDATE ON oauth_tokens
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
