-- Verify suite runs against a deployment (or any endpoint) and each check's result.
CREATE TABLE verify_runs (
    id INTEGER PRIMARY KEY,
    deployment_id INTEGER REFERENCES deployments(id),
    run_id INTEGER REFERENCES runs(id),
    base_url TEXT NOT NULL,
    model TEXT NOT NULL,
    started_at REAL NOT NULL,
    seconds REAL NOT NULL,
    passed INTEGER NOT NULL,
    failed INTEGER NOT NULL,
    skipped INTEGER NOT NULL,
    gate INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX verify_runs_by_deployment ON verify_runs(deployment_id, started_at);
CREATE TABLE verify_results (
    id INTEGER PRIMARY KEY,
    verify_run_id INTEGER NOT NULL REFERENCES verify_runs(id),
    name TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pass', 'fail', 'skip')),
    seconds REAL NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX verify_results_by_run ON verify_results(verify_run_id)
