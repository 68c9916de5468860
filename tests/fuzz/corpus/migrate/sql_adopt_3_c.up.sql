CREATE TABLE adopt_c (id int);
