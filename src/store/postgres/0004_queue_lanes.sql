-- admind schema, version 4: the lane of a queued hook event (the account
-- whose after-hooks run in commit order), derived from its value as
-- `DomainEvent::account_id` does in the daemon: the event's `account_id`,
-- or for a received webhook its data's `account_id` (a string), else ''.
-- A replica running one account's hooks asks, by this index, whether
-- another holds an earlier event of that account, instead of reading the
-- whole queue at each look.
ALTER TABLE queue_items ADD COLUMN lane text GENERATED ALWAYS AS (
  CASE WHEN queue = 'hook_events' THEN COALESCE(
    CASE WHEN jsonb_typeof(value -> 'event' -> 'account_id') = 'string'
      THEN value -> 'event' ->> 'account_id' END,
    CASE WHEN value -> 'event' ->> 'hook' = 'webhook_received'
      AND jsonb_typeof(value -> 'event' -> 'data' -> 'account_id') = 'string'
      THEN value -> 'event' -> 'data' ->> 'account_id' END,
    '') END) STORED;
CREATE INDEX queue_items_by_lane ON queue_items (queue, lane, id) WHERE lane IS NOT NULL;
