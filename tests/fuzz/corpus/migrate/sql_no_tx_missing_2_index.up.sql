CREATE INDEX CONCURRENTLY items_name ON items (name);
