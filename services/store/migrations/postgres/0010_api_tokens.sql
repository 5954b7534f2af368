-- API tokens: the SHA-256 of each token, never the token itself, with its role and site scope (a
-- JSON array of site ids, or ["*"]). Rows are never deleted, and revoked_at_ns is the only column
-- that changes, once; creation and revocation are written to audit_log in the same transaction.
CREATE TABLE api_tokens (
    id text PRIMARY KEY,
    name text NOT NULL,
    role text NOT NULL CHECK (role IN ('viewer', 'reporting', 'operator', 'engineer', 'admin')),
    sites text NOT NULL,
    secret_sha256 text NOT NULL UNIQUE,
    created_at_ns bigint NOT NULL,
    expires_at_ns bigint,
    revoked_at_ns bigint
);
CREATE FUNCTION plantpulse_revoke_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION '% is append-only: revoke a token instead', TG_TABLE_NAME;
    END IF;
    IF OLD.revoked_at_ns IS NOT NULL OR NEW.revoked_at_ns IS NULL
        OR (NEW.id, NEW.name, NEW.role, NEW.sites, NEW.secret_sha256, NEW.created_at_ns,
            NEW.expires_at_ns)
        IS DISTINCT FROM (OLD.id, OLD.name, OLD.role, OLD.sites, OLD.secret_sha256,
                          OLD.created_at_ns, OLD.expires_at_ns) THEN
        RAISE EXCEPTION '%: only revoked_at_ns is set, once', TG_TABLE_NAME;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER revoke_only BEFORE UPDATE OR DELETE ON api_tokens
    FOR EACH ROW EXECUTE FUNCTION plantpulse_revoke_only();
