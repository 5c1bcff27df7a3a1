-- Tables of the partner feed on PostgreSQL.

CREATE TABLE indicators (
    indicator_id   TEXT PRIMARY KEY,
    indicator_type TEXT NOT NULL CHECK (indicator_type IN ('url', 'domain', 'ipv4', 'ipv6', 'email', 'phone', 'crypto_wallet', 'md5', 'sha1', 'sha256')),
    value          TEXT NOT NULL,
    category       TEXT NOT NULL,
    risk_score     DOUBLE PRECISION CHECK (risk_score BETWEEN 0 AND 100),
    confidence     INTEGER CHECK (confidence BETWEEN 0 AND 100),
    tlp            TEXT NOT NULL CHECK (tlp IN ('TLP:CLEAR', 'TLP:GREEN', 'TLP:AMBER', 'TLP:AMBER+STRICT', 'TLP:RED')),
    tags           JSONB NOT NULL DEFAULT '[]',
    description    TEXT,
    first_seen     TIMESTAMPTZ NOT NULL,
    last_seen      TIMESTAMPTZ NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL,
    status         TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
    UNIQUE (indicator_type, value)
);
CREATE INDEX indicators_updated_at ON indicators (updated_at DESC, indicator_id);

CREATE TABLE partner_api_keys (
    key_id                TEXT PRIMARY KEY,
    partner_name          TEXT NOT NULL,
    key_hash              TEXT NOT NULL UNIQUE,
    key_prefix            TEXT NOT NULL,
    scopes                JSONB NOT NULL DEFAULT '[]',
    rate_limit_per_minute INTEGER CHECK (rate_limit_per_minute > 0),
    is_active             BOOLEAN NOT NULL DEFAULT TRUE,
    created_by            TEXT,
    created_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_used_at          TIMESTAMPTZ,
    expires_at            TIMESTAMPTZ
);
CREATE INDEX partner_api_keys_prefix ON partner_api_keys (key_prefix);

CREATE TABLE partner_feed_audit (
    audit_id      TEXT PRIMARY KEY,
    key_id        TEXT,
    partner_name  TEXT,
    key_prefix    TEXT,
    endpoint      TEXT NOT NULL,
    method        TEXT NOT NULL,
    query_params  JSONB NOT NULL DEFAULT '{}',
    result_count  BIGINT,
    response_code INTEGER NOT NULL,
    ip_address    TEXT,
    user_agent    TEXT,
    snapshot_id   TEXT,
    latency_ms    DOUBLE PRECISION NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX partner_feed_audit_key_id ON partner_feed_audit (key_id);
CREATE INDEX partner_feed_audit_created_at ON partner_feed_audit (created_at);

CREATE TABLE feed_snapshots (
    snapshot_id     TEXT PRIMARY KEY,
    started_at      TIMESTAMPTZ NOT NULL,
    finished_at     TIMESTAMPTZ,
    status          TEXT NOT NULL CHECK (status IN ('running', 'published', 'unchanged', 'failed', 'deleted')),
    indicator_count BIGINT,
    watermark       TIMESTAMPTZ,
    object_prefix   TEXT NOT NULL,
    bytes           BIGINT,
    error           TEXT
);
CREATE INDEX feed_snapshots_started_at ON feed_snapshots (started_at);
