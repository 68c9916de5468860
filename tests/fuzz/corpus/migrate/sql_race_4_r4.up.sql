CREATE TABLE r4 (id int);
