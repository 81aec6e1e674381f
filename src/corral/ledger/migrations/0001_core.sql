-- Deployments, runs, startup phases, capacity facts and lifecycle events.
CREATE TABLE deployments (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL
);
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    deployment_id INTEGER NOT NULL REFERENCES deployments(id),
    started_at REAL NOT NULL,
    ready_at REAL,
    ended_at REAL,
    state TEXT NOT NULL,
    runtime TEXT NOT NULL,
    engine TEXT NOT NULL,
    engine_version TEXT,
    command TEXT NOT NULL,
    base_url TEXT,
    log_path TEXT,
    config_json TEXT NOT NULL,
    recipe_json TEXT,
    exit_code INTEGER
);
CREATE INDEX runs_by_deployment ON runs(deployment_id, started_at);
CREATE TABLE phases (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs(id),
    name TEXT NOT NULL,
    started_at REAL NOT NULL,
    seconds REAL
);
CREATE TABLE facts (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs(id),
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    unit TEXT NOT NULL DEFAULT '',
    source_line TEXT NOT NULL DEFAULT ''
);
CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    deployment_id INTEGER REFERENCES deployments(id),
    run_id INTEGER REFERENCES runs(id),
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX events_by_deployment ON events(deployment_id, at)
