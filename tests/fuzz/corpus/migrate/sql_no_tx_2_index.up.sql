-- keel:no-transaction
-- Builds the indexes without blocking writers.  The ';' in the string and in
-- the $$ body below must not split statements; /* nested /* comments; */ too */
CREATE INDEX CONCURRENTLY items_name ON items (name);
COMMENT ON INDEX items_name IS 'names; looked up by the API';
DO $$ BEGIN PERFORM 1; END $$;
CREATE INDEX CONCURRENTLY items_id ON items (id)
