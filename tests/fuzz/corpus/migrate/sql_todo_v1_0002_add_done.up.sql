ALTER TABLE todo ADD COLUMN done boolean NOT NULL DEFAULT false;
