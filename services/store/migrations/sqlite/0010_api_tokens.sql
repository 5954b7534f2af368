-- API tokens: the SHA-256 of each token, never the token itself, with its role and site scope (a
-- JSON array of site ids, or ["*"]). Rows are never deleted, and revoked_at_ns is the only column
-- that changes, once; creation and revocation are written to audit_log in the same transaction.
CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('viewer', 'reporting', 'operator', 'engineer', 'admin')),
    sites TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL UNIQUE,
    created_at_ns INTEGER NOT NULL,
    expires_at_ns INTEGER,
    revoked_at_ns INTEGER
);
CREATE TRIGGER api_tokens_revoke_only BEFORE UPDATE ON api_tokens
WHEN OLD.revoked_at_ns IS NOT NULL OR NEW.revoked_at_ns IS NULL OR NEW.id IS NOT OLD.id OR NEW.name IS NOT OLD.name OR NEW.role IS NOT OLD.role OR NEW.sites IS NOT OLD.sites OR NEW.secret_sha256 IS NOT OLD.secret_sha256 OR NEW.created_at_ns IS NOT OLD.created_at_ns OR NEW.expires_at_ns IS NOT OLD.expires_at_ns
BEGIN SELECT RAISE(ABORT, 'api_tokens: only revoked_at_ns is set, once'); END;
CREATE TRIGGER api_tokens_append_only_d BEFORE DELETE ON api_tokens
BEGIN SELECT RAISE(ABORT, 'api_tokens is append-only: revoke a token instead'); END;
