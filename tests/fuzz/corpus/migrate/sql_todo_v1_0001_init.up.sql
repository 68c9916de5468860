CREATE TABLE todo (id bigserial PRIMARY KEY, title text NOT NULL);
