-- `corral tune`: one row per search (its key makes an interrupted search resumable: the
-- same deployment, workload, SLO and candidates), one row per candidate it finished
-- (measured, skipped by the planner with the reason, or failed with the engine's error).
CREATE TABLE tune_runs (
    id INTEGER PRIMARY KEY,
    deployment TEXT NOT NULL,
    key TEXT NOT NULL,
    workload TEXT NOT NULL,
    slo TEXT NOT NULL,
    started_at REAL NOT NULL,
    ended_at REAL,
    state TEXT NOT NULL,
    result_json TEXT
);
CREATE INDEX tune_runs_key ON tune_runs(key);
CREATE TABLE tune_candidates (
    tune_id INTEGER NOT NULL REFERENCES tune_runs(id),
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    goodput REAL,
    spread REAL,
    decode_tok_s REAL,
    seconds REAL,
    result_json TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (tune_id, name)
);
