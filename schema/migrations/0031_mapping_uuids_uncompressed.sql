-- Issue 21: a mapping block's UUIDs (destination_ids, 16 random bytes each) never compress, yet
-- every block written tried: PostgreSQL ran its compressor over the array (some 160 KB for a
-- batch of 10,000 mappings) before storing it as it was. Stored out of line without
-- compression, the block costs its write alone (about half the PostgreSQL CPU of writing a
-- block, measured); its size is unchanged. The legacy ids keep the default: other keys than
-- integers (text, composite keys) may compress.
ALTER TABLE migration_mapping_blocks ALTER COLUMN destination_ids SET STORAGE EXTERNAL;
