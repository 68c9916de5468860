DROP TABLE todo;
