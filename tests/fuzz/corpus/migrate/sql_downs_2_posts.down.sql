DROP TABLE posts;
