ALTER TABLE adopt_c ADD COLUMN x int;
