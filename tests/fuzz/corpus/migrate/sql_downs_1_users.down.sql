DROP TABLE users;
