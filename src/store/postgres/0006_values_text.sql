-- admind schema, version 6: every record's value is kept as JSON text.
-- The daemon writes the JSON it encoded and reads back the JSON it will
-- decode; as jsonb, PostgreSQL parsed each value, sorted its keys and built
-- its binary form at every write, and turned it back into text at every
-- read: under load, about a fifth of the database's work was that, for values
-- nothing queries inside (the columns beside them are what the daemon
-- looks records up by). An operator reads one with `value::jsonb`.
-- Upgrading rewrites each table once.
DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['accounts', 'members', 'integrations', 'tokens',
      'sessions', 'invoices', 'investigations', 'licence_requests',
      'webhooks_seen', 'audit', 'subscribers', 'replicas', 'policy_switches'] LOOP
    EXECUTE format('ALTER TABLE %I ALTER COLUMN value TYPE text USING value::text', t);
  END LOOP;
END $$;
-- The lane of a queued hook event (schema version 4) was derived from its
-- jsonb; the daemon now writes it beside the value, from the same
-- `DomainEvent::account_id` the hook worker runs the event by.
ALTER TABLE queue_items ALTER COLUMN lane DROP EXPRESSION;
ALTER TABLE queue_items ALTER COLUMN value TYPE text USING value::text;
-- A new column type takes the default compression: lz4 again where the
-- server has it (schema version 5).
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_settings
             WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)) THEN
    ALTER TABLE queue_items ALTER COLUMN value SET COMPRESSION lz4;
  END IF;
END $$;
