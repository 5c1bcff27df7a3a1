-- Tables of the partner feed on SQLite. Timestamps are RFC 3339 text in UTC, JSON columns are text.

CREATE TABLE indicators (
    indicator_id   TEXT PRIMARY KEY NOT NULL,
    indicator_type TEXT NOT NULL CHECK (indicator_type IN ('url', 'domain', 'ipv4', 'ipv6', 'email', 'phone', 'crypto_wallet', 'md5', 'sha1', 'sha256')),
    value          TEXT NOT NULL,
    category       TEXT NOT NULL,
    risk_score     REAL CHECK (risk_score BETWEEN 0 AND 100),
    confidence     INTEGER CHECK (confidence BETWEEN 0 AND 100),
    tlp            TEXT NOT NULL CHECK (tlp IN ('TLP:CLEAR', 'TLP:GREEN', 'TLP:AMBER', 'TLP:AMBER+STRICT', 'TLP:RED')),
    tags           TEXT NOT NULL DEFAULT '[]',
    description    TEXT,
    first_seen     TEXT NOT NULL,
    last_seen      TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    status         TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
    UNIQUE (indicator_type, value)
);
CREATE INDEX indicators_updated_at ON indicators (updated_at DESC, indicator_id);

CREATE TABLE partner_api_keys (
    key_id                TEXT PRIMARY KEY NOT NULL,
    partner_name          TEXT NOT NULL,
    key_hash              TEXT NOT NULL UNIQUE,
    key_prefix            TEXT NOT NULL,
    scopes                TEXT NOT NULL DEFAULT '[]',
    rate_limit_per_minute INTEGER CHECK (rate_limit_per_minute > 0),
    is_active             BOOLEAN NOT NULL DEFAULT TRUE,
    created_by            TEXT,
    created_at            TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    last_used_at          TEXT,
    expires_at            TEXT
);
CREATE INDEX partner_api_keys_prefix ON partner_api_keys (key_prefix);

CREATE TABLE partner_feed_audit (
    audit_id      TEXT PRIMARY KEY NOT NULL,
    key_id        TEXT,
    partner_name  TEXT,
    key_prefix    TEXT,
    endpoint      TEXT NOT NULL,
    method        TEXT NOT NULL,
    query_params  TEXT NOT NULL DEFAULT '{}',
    result_count  INTEGER,
    response_code INTEGER NOT NULL,
    ip_address    TEXT,
    user_agent    TEXT,
    snapshot_id   TEXT,
    latency_ms    REAL NOT NULL,
    created_at    TEXT NOT NULL
);
CREATE INDEX partner_feed_audit_key_id ON partner_feed_audit (key_id);
CREATE INDEX partner_feed_audit_created_at ON partner_feed_audit (created_at);

CREATE TABLE feed_snapshots (
    snapshot_id     TEXT PRIMARY KEY NOT NULL,
    started_at      TEXT NOT NULL,
    finished_at     TEXT,
    status          TEXT NOT NULL CHECK (status IN ('running', 'published', 'unchanged', 'failed', 'deleted')),
    indicator_count INTEGER,
    watermark       TEXT,
    object_prefix   TEXT NOT NULL,
    bytes           INTEGER,
    error           TEXT
);
CREATE INDEX feed_snapshots_started_at ON feed_snapshots (started_at);
