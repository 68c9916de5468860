-- keel:no-transaction
CREATE INDEX CONCURRENTLY items_name ON items (name);
  SELECT no_such_column FROM items;
CREATE INDEX CONCURRENTLY items_id ON items (id);
