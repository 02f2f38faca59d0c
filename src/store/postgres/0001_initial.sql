-- admind schema, version 1. Values are the domain's records as jsonb; the
-- columns beside them are what the daemon looks records up by (and what
-- an operator queries by).
CREATE TABLE admind_meta (key text PRIMARY KEY, value text NOT NULL);
CREATE SEQUENCE admind_ids;

CREATE TABLE accounts (id text PRIMARY KEY, name text NOT NULL, value jsonb NOT NULL);
CREATE TABLE members (
  account_id text NOT NULL, id text NOT NULL, value jsonb NOT NULL,
  PRIMARY KEY (account_id, id));
CREATE TABLE email_index (
  account_id text NOT NULL, email text NOT NULL, user_id text NOT NULL,
  PRIMARY KEY (account_id, email));
CREATE TABLE integrations (
  account_id text NOT NULL, id text NOT NULL, value jsonb NOT NULL,
  PRIMARY KEY (account_id, id));
CREATE TABLE tokens (hash text PRIMARY KEY, value jsonb NOT NULL);
CREATE TABLE sessions (
  hash text PRIMARY KEY, account_id text NOT NULL, user_id text NOT NULL,
  email text NOT NULL, value jsonb NOT NULL);
CREATE INDEX sessions_by_member ON sessions (account_id, user_id);
CREATE TABLE invoices (
  account_id text NOT NULL, seq bigint NOT NULL, value jsonb NOT NULL,
  PRIMARY KEY (account_id, seq));
CREATE TABLE investigations (
  account_id text NOT NULL, id text NOT NULL, value jsonb NOT NULL,
  PRIMARY KEY (account_id, id));
CREATE TABLE licence_requests (
  id text PRIMARY KEY, account_id text NOT NULL, status text NOT NULL,
  created_at timestamptz NOT NULL, value jsonb NOT NULL);
CREATE INDEX licence_requests_by_account ON licence_requests (account_id, created_at);
CREATE INDEX licence_requests_by_status ON licence_requests (status, created_at);
-- `at` for pruning; `value` keeps the time exactly (nanoseconds).
CREATE TABLE webhooks_seen (
  source text NOT NULL, webhook_id text NOT NULL, at timestamptz NOT NULL,
  value jsonb NOT NULL, PRIMARY KEY (source, webhook_id));
CREATE INDEX webhooks_seen_by_time ON webhooks_seen (at);
-- The audit log; scope is the account id, or 'platform'.
CREATE TABLE audit (
  scope text NOT NULL, seq bigint NOT NULL, at timestamptz NOT NULL,
  action text NOT NULL, value jsonb NOT NULL,
  PRIMARY KEY (scope, seq));
CREATE INDEX audit_by_time ON audit (at);
-- Durable queues: outbox, outbox_dead, hook_events, deliveries, deliveries_done.
CREATE TABLE queue_items (
  queue text NOT NULL, id bigint NOT NULL, value jsonb NOT NULL,
  PRIMARY KEY (queue, id));
CREATE TABLE subscribers (name text PRIMARY KEY, value jsonb NOT NULL);
