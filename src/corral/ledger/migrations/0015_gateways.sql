-- Where `corral serve` put its gateway, so that other commands find it by deployment name
-- (`corral verify NAME`, `corral bench ... NAME`) and `corral status` shows the URL clients
-- use rather than an engine's. One row per gateway started; `ended_at` is set when it
-- stops. `pid` (with its start time) tells a live gateway from one killed without a chance
-- to close its row. `served_json` is the JSON list of served names it routes.
CREATE TABLE gateways (
    id INTEGER PRIMARY KEY,
    base_url TEXT NOT NULL,
    pid INTEGER NOT NULL,
    pid_started_at REAL,
    served_json TEXT NOT NULL,
    started_at REAL NOT NULL,
    ended_at REAL
);
