-- How each run was launched (for `corral stop`, `logs`, adoption and the report): the
-- process id (with its start time, so a reused pid is not mistaken for the engine) or the
-- container, the served name, the recipe and hardware it was chosen for, and the exact
-- command as a shell line. The config and recipe snapshots are runs.config_json and
-- runs.recipe_json (0001), capacity figures are facts, verify results are 0002's
-- verify_runs/verify_results, benchmarks are 0003's bench_results.
CREATE TABLE run_launches (
    run_id INTEGER PRIMARY KEY REFERENCES runs(id),
    pid INTEGER,
    pid_started_at REAL,
    container TEXT,
    container_id TEXT,
    served_name TEXT NOT NULL,
    recipe TEXT,
    hardware_kind TEXT,
    hardware_json TEXT,
    shell_command TEXT NOT NULL,
    env_json TEXT NOT NULL DEFAULT '{}'
)
