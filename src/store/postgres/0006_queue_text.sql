-- admind schema, version 6: a queue item's value is kept as JSON text.
-- Queue items are written once, read by the worker they were handed to
-- (or a scan after a restart) and deleted; nothing queries inside them.
-- As jsonb, each was parsed, its keys sorted and rebuilt at every insert:
-- the largest part of the database's work to receive a transfer's rows.
-- `value::jsonb` still reads one by hand. The lane (schema version 4) is
-- now written by the daemon beside the value, from the same
-- `DomainEvent::account_id` the hook worker runs the event by.
ALTER TABLE queue_items ALTER COLUMN lane DROP EXPRESSION;
ALTER TABLE queue_items ALTER COLUMN value TYPE text USING value::text;
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_settings
             WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)) THEN
    ALTER TABLE queue_items ALTER COLUMN value SET COMPRESSION lz4;
  END IF;
END $$;
