DROP INDEX todo_item_created_at;
ALTER TABLE todo_item DROP COLUMN created_at;
