BEGIN;
CREATE TABLE wrapped (id int);
COMMIT;
