-- Per-key usage, written by the gateway in batches (corral.gateway.usage): one row per
-- minute, key and model; `corral keys usage` sums them. `key_name` is "" without auth;
-- `model` is the deployment's served name.
CREATE TABLE key_usage (
    minute REAL NOT NULL,
    key_name TEXT NOT NULL,
    model TEXT NOT NULL,
    requests INTEGER NOT NULL DEFAULT 0,
    errors INTEGER NOT NULL DEFAULT 0,
    refused INTEGER NOT NULL DEFAULT 0,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (minute, key_name, model)
);
CREATE INDEX key_usage_by_key ON key_usage(key_name, minute);
