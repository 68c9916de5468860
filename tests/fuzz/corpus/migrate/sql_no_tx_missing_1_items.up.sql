CREATE TABLE items (id int, name text);
INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 100) g;
