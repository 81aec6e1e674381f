-- Key limits, expiry and rotation (`corral keys create --rpm ... --expires ...`,
-- `corral keys rotate NAME --overlap 1h`). `limits_json` holds KeyLimits' fields. A rotated
-- key keeps working until its `expires_at` (the overlap window) and is marked
-- `superseded_at`, so its successor may take the same name while both are active.
ALTER TABLE api_keys ADD COLUMN limits_json TEXT NOT NULL DEFAULT '{}';
ALTER TABLE api_keys ADD COLUMN expires_at REAL;
ALTER TABLE api_keys ADD COLUMN superseded_at REAL;
DROP INDEX api_keys_active_name;
CREATE UNIQUE INDEX api_keys_active_name ON api_keys(name)
    WHERE revoked_at IS NULL AND superseded_at IS NULL;
