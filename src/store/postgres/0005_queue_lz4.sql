-- admind schema, version 5: queue values compressed with lz4 where the
-- server can (PostgreSQL 14 and later, built with lz4, as Debian's and
-- the PGDG packages are); elsewhere they stay as they were (pglz). A page
-- of the hook-call record (about 125 KB of JSON) took pglz about 1.2 ms
-- to compress and lz4 0.17 ms; smaller values are not compressed at all.
-- Values already stored keep the compression they were written with.
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_settings
             WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)) THEN
    ALTER TABLE queue_items ALTER COLUMN value SET COMPRESSION lz4;
  END IF;
END $$;
