CREATE TABLE r1 (id int);
