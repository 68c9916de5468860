ALTER TABLE todo_item ADD COLUMN created_at TIMESTAMPTZ NOT NULL DEFAULT now();
CREATE INDEX todo_item_created_at ON todo_item (created_at);
