CREATE TABLE d (id int PRIMARY KEY, b_id int REFERENCES b (id));
