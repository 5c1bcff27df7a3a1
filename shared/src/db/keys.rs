//! Queries on `partner_api_keys`.

use chrono::{DateTime, Utc};
use sqlx::types::Json;

use super::{Database, DbError, QueryContext};
use crate::keys::{KeyScopes, RawKey};
use crate::on_pool;

/// One row of `partner_api_keys`, without its hash.
#[derive(Debug, Clone, PartialEq)]
pub struct PartnerKey {
    /// Primary key (UUID text).
    pub key_id: String,
    /// Partner the key belongs to.
    pub partner_name: String,
    /// First eight characters of the raw key.
    pub key_prefix: String,
    /// Scope entries as stored.
    pub scopes: Vec<String>,
    /// Requests per minute, or `None` for the configured default.
    pub rate_limit_per_minute: Option<i64>,
    /// False once an admin revoked the key.
    pub is_active: bool,
    /// Who created the key.
    pub created_by: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last time the key was used, updated in batches by the edge.
    pub last_used_at: Option<DateTime<Utc>>,
    /// Time after which the key is refused.
    pub expires_at: Option<DateTime<Utc>>,
}

impl PartnerKey {
    /// Parses the stored scopes.
    pub fn parsed_scopes(&self) -> Result<KeyScopes, crate::keys::InvalidScope> {
        KeyScopes::parse(&self.scopes)
    }

    /// Returns true when `expires_at` is set and not after `now`.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|expires| expires <= now)
    }
}

#[derive(sqlx::FromRow)]
struct PartnerKeyRow {
    key_id: String,
    partner_name: String,
    key_prefix: String,
    scopes: Json<Vec<String>>,
    rate_limit_per_minute: Option<i64>,
    is_active: bool,
    created_by: Option<String>,
    created_at: DateTime<Utc>,
    last_used_at: Option<DateTime<Utc>>,
    expires_at: Option<DateTime<Utc>>,
}

impl From<PartnerKeyRow> for PartnerKey {
    fn from(row: PartnerKeyRow) -> Self {
        PartnerKey {
            key_id: row.key_id,
            partner_name: row.partner_name,
            key_prefix: row.key_prefix,
            scopes: row.scopes.0,
            rate_limit_per_minute: row.rate_limit_per_minute,
            is_active: row.is_active,
            created_by: row.created_by,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
            expires_at: row.expires_at,
        }
    }
}

const KEY_COLUMNS: &str = "key_id, partner_name, key_prefix, scopes, CAST(rate_limit_per_minute AS BIGINT) AS rate_limit_per_minute, \
     is_active, created_by, created_at, last_used_at, expires_at";

/// Fields of a key to create.
#[derive(Debug, Clone)]
pub struct NewPartnerKey {
    /// Partner the key belongs to.
    pub partner_name: String,
    /// Scope entries, already validated.
    pub scopes: Vec<String>,
    /// Requests per minute, or `None` for the configured default.
    pub rate_limit_per_minute: Option<i64>,
    /// Time after which the key is refused.
    pub expires_at: Option<DateTime<Utc>>,
    /// Who created the key.
    pub created_by: Option<String>,
}

impl Database {
    /// Stores a key under the hash and prefix of `raw` and returns the new row.
    pub async fn insert_partner_key(
        &self,
        raw: &RawKey,
        new_key: &NewPartnerKey,
    ) -> Result<PartnerKey, DbError> {
        let key_id = uuid::Uuid::new_v4().to_string();
        let created_at = Utc::now();
        let sql = "INSERT INTO partner_api_keys \
             (key_id, partner_name, key_hash, key_prefix, scopes, rate_limit_per_minute, is_active, created_by, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, TRUE, $7, $8, $9)";
        on_pool!(self, pool => sqlx::query(sql)
            .bind(&key_id)
            .bind(&new_key.partner_name)
            .bind(raw.hash())
            .bind(raw.prefix())
            .bind(Json(&new_key.scopes))
            .bind(new_key.rate_limit_per_minute.map(|limit| limit as i32))
            .bind(&new_key.created_by)
            .bind(created_at)
            .bind(new_key.expires_at)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))
        .action(|| format!("creating a key for partner {}", new_key.partner_name))?;
        Ok(PartnerKey {
            key_id,
            partner_name: new_key.partner_name.clone(),
            key_prefix: raw.prefix(),
            scopes: new_key.scopes.clone(),
            rate_limit_per_minute: new_key.rate_limit_per_minute,
            is_active: true,
            created_by: new_key.created_by.clone(),
            created_at,
            last_used_at: None,
            expires_at: new_key.expires_at,
        })
    }

    /// Finds the key whose stored hash is `key_hash`.
    pub async fn find_partner_key_by_hash(
        &self,
        key_hash: &str,
    ) -> Result<Option<PartnerKey>, DbError> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM partner_api_keys WHERE key_hash = $1");
        let row: Option<PartnerKeyRow> =
            on_pool!(self, pool => sqlx::query_as(&sql).bind(key_hash).fetch_optional(pool).await)
                .action(|| "looking up a partner key by hash".to_owned())?;
        Ok(row.map(PartnerKey::from))
    }

    /// Lists every key, newest first.
    pub async fn list_partner_keys(&self) -> Result<Vec<PartnerKey>, DbError> {
        let sql =
            format!("SELECT {KEY_COLUMNS} FROM partner_api_keys ORDER BY created_at DESC, key_id");
        let rows: Vec<PartnerKeyRow> =
            on_pool!(self, pool => sqlx::query_as(&sql).fetch_all(pool).await)
                .action(|| "listing partner keys".to_owned())?;
        Ok(rows.into_iter().map(PartnerKey::from).collect())
    }

    /// Finds the keys whose id equals `id_or_prefix` or whose prefix starts with it.
    pub async fn find_partner_keys_by_id_or_prefix(
        &self,
        id_or_prefix: &str,
    ) -> Result<Vec<PartnerKey>, DbError> {
        let sql = format!(
            "SELECT {KEY_COLUMNS} FROM partner_api_keys WHERE key_id = $1 OR substr(key_prefix, 1, length($1)) = $1 ORDER BY key_id"
        );
        let rows: Vec<PartnerKeyRow> =
            on_pool!(self, pool => sqlx::query_as(&sql).bind(id_or_prefix).fetch_all(pool).await)
                .action(|| format!("looking up partner key {id_or_prefix}"))?;
        Ok(rows.into_iter().map(PartnerKey::from).collect())
    }

    /// Sets `is_active = false` on one key; returns whether a row changed.
    pub async fn revoke_partner_key(&self, key_id: &str) -> Result<bool, DbError> {
        let sql = "UPDATE partner_api_keys SET is_active = FALSE WHERE key_id = $1";
        let result = on_pool!(self, pool => sqlx::query(sql).bind(key_id).execute(pool).await.map(|done| done.rows_affected()))
            .action(|| format!("revoking partner key {key_id}"))?;
        Ok(result == 1)
    }

    /// Records that keys were used, one statement per key; the edge calls this in batches.
    pub async fn touch_partner_keys(
        &self,
        uses: &[(String, DateTime<Utc>)],
    ) -> Result<(), DbError> {
        let sql = "UPDATE partner_api_keys SET last_used_at = $1 WHERE key_id = $2 AND (last_used_at IS NULL OR last_used_at < $1)";
        for (key_id, used_at) in uses {
            on_pool!(self, pool => sqlx::query(sql).bind(*used_at).bind(key_id).execute(pool).await.map(|_| ()))
                .action(|| format!("recording use of partner key {key_id}"))?;
        }
        Ok(())
    }
}
