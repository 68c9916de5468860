CREATE TABLE small (id int);
