CREATE TABLE adopt_b (id int);
