ALTER TABLE webhook_event DROP COLUMN body_sha256;
