-- API tokens of the example app's callers: only a token's SHA-256 is kept,
-- so the table never holds a usable credential.
CREATE TABLE api_token (
    token_sha256 bytea PRIMARY KEY,
    user_id text NOT NULL,
    admin boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now()
);
