-- Which host(s) each run ran on (issue 12). One row per rank: a single-node run has one
-- (rank 0, role 'head'); a multi-node run one per node, each with the process id and start
-- time that rank was found by on its own host. `host` is the name in corral.yaml
-- ('local' for this machine), `address` what corral connected to.
CREATE TABLE run_hosts (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    rank INTEGER NOT NULL DEFAULT 0,
    host TEXT NOT NULL,
    address TEXT NOT NULL DEFAULT '',
    role TEXT NOT NULL DEFAULT 'head',
    pid INTEGER,
    pid_started_at REAL,
    PRIMARY KEY (run_id, rank)
);
CREATE INDEX run_hosts_by_host ON run_hosts(host);
