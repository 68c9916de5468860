CREATE TABLE wrapped2 (id int);
