-- admind schema, version 2: what several replicas on one database share.
-- A queue item is claimed by one replica for a lease (FOR UPDATE SKIP
-- LOCKED picks unclaimed rows); a write of the item releases the claim.
ALTER TABLE queue_items ADD COLUMN claimed_by text, ADD COLUMN claimed_until timestamptz;
-- Sign-in attempt counts per key (a hash) and one-minute window, so a
-- limit holds whichever replica an attempt reaches.
CREATE TABLE attempt_windows (
  key text PRIMARY KEY, window_start bigint NOT NULL, count integer NOT NULL);
-- Short-lived facts every replica must know until `until` (a signed-out
-- platform-support cookie).
CREATE TABLE marks (key text PRIMARY KEY, until timestamptz NOT NULL);
-- Each live replica and the policy versions it has loaded (a heartbeat).
CREATE TABLE replicas (
  id text PRIMARY KEY, started_at timestamptz NOT NULL,
  seen_at timestamptz NOT NULL, value jsonb NOT NULL);
