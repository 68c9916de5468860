CREATE TABLE r3 (id int);
