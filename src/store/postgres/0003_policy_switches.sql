-- admind schema, version 3: policies switched off (break-glass) or back on
-- by platform support, by policy name.
CREATE TABLE policy_switches (name text PRIMARY KEY, value jsonb NOT NULL);
