CREATE INDEX calls_by_caller ON calls (caller, started_at);
