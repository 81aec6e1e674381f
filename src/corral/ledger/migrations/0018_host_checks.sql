-- What `corral hosts check` (and serve's pre-start check) found on each host, so `status`
-- and the report can show the fleet by host (the seed's "Related Systems") with each
-- host's hardware even where nothing is deployed.
CREATE TABLE host_checks (
    id INTEGER PRIMARY KEY,
    host TEXT NOT NULL,
    address TEXT NOT NULL,
    checked_at REAL NOT NULL,
    ok INTEGER NOT NULL,
    hardware_summary TEXT,
    hardware_json TEXT,
    findings_json TEXT NOT NULL,
    clock_skew_s REAL
);
CREATE INDEX host_checks_by_host ON host_checks(host, checked_at);
