-- Issue 16: noting a forgotten mapping (a row deleted in the source during catch-up) cost a
-- foreign-key check per key: one single-row look-up of its block, run as a statement of its own
-- for every row inserted (2,391 in a seed-002 final drain, about 19 ms of PostgreSQL time, and
-- several times that under load). The engine now locks the blocks it notes keys of in the same
-- statement (FOR KEY SHARE, as the check did, once per statement), and a trigger removes a
-- block's forgotten keys when the block is deleted, as ON DELETE CASCADE did.
ALTER TABLE migration_mapping_forgotten DROP CONSTRAINT migration_mapping_forgotten_block_id_fkey;

CREATE FUNCTION migration_mapping_blocks_forget() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('DELETE FROM %I.migration_mapping_forgotten f USING gone g WHERE f.block_id = g.id', TG_TABLE_SCHEMA);
  RETURN NULL;
END
$$;

CREATE TRIGGER migration_mapping_blocks_forget AFTER DELETE ON migration_mapping_blocks
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION migration_mapping_blocks_forget();
