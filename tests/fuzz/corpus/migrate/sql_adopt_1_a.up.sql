CREATE TABLE adopt_a (id int);
