CREATE TABLE tags (id bigserial PRIMARY KEY, label text NOT NULL);
CREATE TABLE todo_tags (todo_id bigint, tag_id bigint REFERENCES tags (id), note text);
INSERT INTO tags (label) VALUES ('café');
    /* ✓ */ INSERT INTO todo_tags (todo_id, tag_id, note) SELECT 1, id, 'é' FROM tags;
