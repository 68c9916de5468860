SELECT pg_sleep(0.2);
CREATE TABLE r2 (id int);
