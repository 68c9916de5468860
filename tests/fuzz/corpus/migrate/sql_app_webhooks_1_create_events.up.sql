CREATE TABLE webhook_event (
    id BIGSERIAL PRIMARY KEY,
    provider TEXT NOT NULL DEFAULT 'github',
    delivery_id TEXT NOT NULL,
    event TEXT NOT NULL,
    payload JSONB,             -- the body when it is JSON
    payload_raw BYTEA NOT NULL, -- the body exactly as signed
    received_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT webhook_event_delivery UNIQUE (delivery_id)
);
