-- A delivery is identified by its signed body as well as by its id:
-- X-GitHub-Delivery is not covered by the signature, so a captured delivery
-- replayed under a new id must still be a duplicate.
ALTER TABLE webhook_event ADD COLUMN body_sha256 BYTEA;

-- Rows stored before this migration: only the first of identical bodies gets
-- its hash, so the constraint can be added without dropping a row.
UPDATE webhook_event e SET body_sha256 = f.h
  FROM (SELECT id, sha256(payload_raw) AS h,
               row_number() OVER (PARTITION BY provider, sha256(payload_raw) ORDER BY id) AS n
          FROM webhook_event) f
 WHERE e.id = f.id AND f.n = 1;

ALTER TABLE webhook_event ADD CONSTRAINT webhook_event_body UNIQUE (provider, body_sha256);
