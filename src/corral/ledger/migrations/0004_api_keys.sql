-- API keys for the gateway (`corral keys create|list|revoke`). Only the sha256 of a key is
-- stored, and `prefix` is its first characters, shown by `keys list` to tell keys apart.
-- `models_json` is a JSON list of names, aliases or roles the key may use ([] = all).
CREATE TABLE api_keys (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    sha256 TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    models_json TEXT NOT NULL,
    created_at REAL NOT NULL,
    revoked_at REAL
);
CREATE UNIQUE INDEX api_keys_active_name ON api_keys(name) WHERE revoked_at IS NULL;
