CREATE TABLE tags (id bigserial PRIMARY KEY, label text NOT NULL);
-- étiquettes: a tag's label, « unique » per todo ✓
INSERT INTO tags (label) VALUES ('café');
    /* ✓ */ INSERT INTO todo_tags (todo_id, tag_id, note) SELECT 1, id, 'é' FROM tags;
