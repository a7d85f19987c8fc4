CREATE TABLE calls (
    id INTEGER PRIMARY KEY,
    caller TEXT NOT NULL,
    started_at TEXT NOT NULL
);
