-- PostgreSQL version of 0002_embed_tokens.sql: PostgreSQL can alter a
-- CHECK constraint in place, so the table is not rebuilt (a rebuilt table
-- would keep its ids but start a new id sequence at 1).
ALTER TABLE tokens DROP CONSTRAINT tokens_kind_check;
ALTER TABLE tokens ADD CONSTRAINT tokens_kind_check CHECK (kind IN ('api', 'session', 'embed'));
