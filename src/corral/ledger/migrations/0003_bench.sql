-- Benchmark results: one row per `corral bench` run against a deployment, the whole result
-- as JSON, plus headline figures per load level for reports and queries.
CREATE TABLE bench_results (
    id INTEGER PRIMARY KEY,
    deployment_id INTEGER REFERENCES deployments(id),
    run_id INTEGER REFERENCES runs(id),
    kind TEXT NOT NULL,
    at REAL NOT NULL,
    base_url TEXT NOT NULL,
    model TEXT NOT NULL,
    result_json TEXT NOT NULL
);
CREATE INDEX bench_results_by_deployment ON bench_results(deployment_id, at);
CREATE TABLE bench_figures (
    id INTEGER PRIMARY KEY,
    bench_id INTEGER NOT NULL REFERENCES bench_results(id),
    label TEXT NOT NULL,
    name TEXT NOT NULL,
    value REAL NOT NULL,
    unit TEXT NOT NULL DEFAULT ''
);
CREATE INDEX bench_figures_by_bench ON bench_figures(bench_id)
