DROP TABLE todo_item;
