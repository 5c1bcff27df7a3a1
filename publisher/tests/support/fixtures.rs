//! A few hundred indicators with hostile values, written to the database with plain SQL.

use chrono::{DateTime, Duration, DurationRound, Utc};
use partner_feed_shared::db::Database;
use partner_feed_shared::{on_pool, Indicator, IndicatorType, Status, Tlp};
use sha2::{Digest, Sha256};
use sqlx::types::Json;

/// Number of fixture rows.
pub const FIXTURE_ROWS: usize = 300;

/// TLP levels in the order the fixtures cycle through them.
const TLP_CYCLE: [Tlp; 5] = [
    Tlp::Clear,
    Tlp::Green,
    Tlp::Amber,
    Tlp::AmberStrict,
    Tlp::Red,
];

const CATEGORIES: [&str; 5] = [
    "phishing",
    "investment_scam",
    "crypto_drainer",
    "malware_download",
    "tech \"support\", 'refund' scam",
];

/// Returns the fixtures. They cover every type and TLP (RED included), revoked rows and ids that
/// are not UUIDs. Their values contain quotes, backslashes, endings in `')`, CR/LF, punycode,
/// non-ASCII text and 2 KB URLs, their tags contain `;` and `,`, and rows come in groups of
/// three sharing one `updated_at`.
///
/// `TLP:RED` rows of the url, domain and email types carry `red-secret` in their value, and
/// every `TLP:RED` row has a UUIDv4 id, so a leak is found by searching for either.
pub fn hostile_indicators() -> Vec<Indicator> {
    (0..FIXTURE_ROWS).map(hostile_indicator).collect()
}

fn hostile_indicator(n: usize) -> Indicator {
    let indicator_type = IndicatorType::ALL[n % IndicatorType::ALL.len()];
    let tlp = TLP_CYCLE[(n / 10) % TLP_CYCLE.len()];
    let base: DateTime<Utc> = "2025-04-21T12:00:00Z".parse().unwrap();
    let group = (n / 3) as i64;
    let updated_at = base - Duration::minutes(group) + Duration::milliseconds(250 * (group % 4));
    let created_at = updated_at - Duration::days((n % 30) as i64 + 1);

    Indicator {
        id: fixture_id(n, tlp),
        indicator_type,
        value: hostile_value(n, indicator_type, tlp),
        category: CATEGORIES[n % CATEGORIES.len()].to_owned(),
        risk_score: (n % 7 != 0).then(|| ((n * 37) % 1001) as f64 / 10.0),
        confidence: (n % 5 != 0).then_some((n % 101) as i32),
        tlp,
        tags: hostile_tags(n),
        description: hostile_description(n),
        first_seen: created_at - Duration::hours(1),
        last_seen: updated_at - Duration::minutes(1),
        created_at,
        updated_at,
        status: if n % 11 == 5 {
            Status::Revoked
        } else {
            Status::Active
        },
    }
}

fn fixture_id(n: usize, tlp: Tlp) -> String {
    if n % 23 == 7 && tlp != Tlp::Red {
        return format!("legacy-{n:05}");
    }
    let digest = Sha256::digest(format!("fixture-{n}"));
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

fn hex_of(n: usize, length: usize) -> String {
    hex::encode(Sha256::digest(format!("hash-{n}")))[..length].to_owned()
}

fn hostile_value(n: usize, indicator_type: IndicatorType, tlp: Tlp) -> String {
    let red = tlp == Tlp::Red;
    match indicator_type {
        IndicatorType::Url if red => format!("http://red-secret-{n}.example/"),
        IndicatorType::Url => match (n / 10) % 6 {
            0 => format!("http://shop{n}.example/login?next='/home')"),
            1 => format!("https://ex{n}.example/path\\with\\backslashes/\"quoted\""),
            2 => format!("https://long{n}.example/?q={}", "a".repeat(2048)),
            3 => format!("http://bücher{n}.example/straße?ä=ö"),
            4 => format!("http://crlf{n}.example/a\r\nb"),
            _ => format!("http://[2001:db8::{n:x}]:8080/x,y;z"),
        },
        IndicatorType::Domain if red => format!("red-secret-{n}.example"),
        IndicatorType::Domain if n % 20 < 10 => format!("shop{n}.xn--80ak6aa92e.com"),
        IndicatorType::Domain => format!("пример{n}.рф"),
        IndicatorType::Ipv4 => format!("198.51.{}.{}", n / 256, n % 256),
        IndicatorType::Ipv6 => format!("2001:db8::{n:x}"),
        IndicatorType::Email if red => format!("red-secret-{n}@example.com"),
        IndicatorType::Email => format!("o'brien+{n}@example.com"),
        IndicatorType::Phone => format!("+44 20 7946 {n:04}"),
        IndicatorType::CryptoWallet => format!("0x{}", hex_of(n, 40)),
        IndicatorType::Md5 => hex_of(n, 32),
        IndicatorType::Sha1 => hex_of(n, 40),
        IndicatorType::Sha256 => hex_of(n, 64),
    }
}

fn hostile_tags(n: usize) -> Vec<String> {
    let tags: &[&str] = match n % 5 {
        0 => &[],
        1 => &["bank", "sms"],
        2 => &["a;b", "c,d"],
        3 => &["quote\"d", "back\\slash"],
        _ => &["ü-tag", "tab\there"],
    };
    tags.iter().map(|tag| (*tag).to_owned()).collect()
}

fn hostile_description(n: usize) -> Option<String> {
    match n % 4 {
        0 => None,
        1 => Some("line one\r\nline two".to_owned()),
        2 => Some("ends with ')".to_owned()),
        _ => Some("back\\slash and \"quotes\", commas; semicolons".to_owned()),
    }
}

/// Inserts `rows` into `indicators`.
pub async fn insert_indicators(db: &Database, rows: &[Indicator]) {
    let sql = "INSERT INTO indicators (indicator_id, indicator_type, value, category, risk_score, \
               confidence, tlp, tags, description, first_seen, last_seen, created_at, updated_at, status) \
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)";
    for row in rows {
        on_pool!(db, pool => sqlx::query(sql)
            .bind(&row.id)
            .bind(row.indicator_type.as_str())
            .bind(&row.value)
            .bind(&row.category)
            .bind(row.risk_score)
            .bind(row.confidence)
            .bind(row.tlp.as_str())
            .bind(Json(&row.tags))
            .bind(&row.description)
            .bind(row.first_seen)
            .bind(row.last_seen)
            .bind(row.created_at)
            .bind(row.updated_at)
            .bind(row.status.as_str())
            .execute(pool)
            .await
            .map(|_| ()))
        .unwrap_or_else(|error| panic!("insert fixture {}: {error}", row.id));
    }
}

/// Sets `updated_at` of one row to now (whole milliseconds), as an analyst edit would.
pub async fn touch_indicator(db: &Database, indicator_id: &str) {
    let now = Utc::now()
        .duration_trunc(Duration::milliseconds(1))
        .unwrap();
    let sql = "UPDATE indicators SET updated_at = $1 WHERE indicator_id = $2";
    let updated = on_pool!(db, pool => sqlx::query(sql)
        .bind(now)
        .bind(indicator_id)
        .execute(pool)
        .await
        .map(|result| result.rows_affected()))
    .expect("touch an indicator");
    assert_eq!(updated, 1, "indicator {indicator_id} exists");
}

/// Returns the rows a snapshot's index holds, in publish order: no `TLP:RED`, `updated_at`
/// descending, then id by bytes.
pub fn publish_order(rows: &[Indicator]) -> Vec<Indicator> {
    let mut published: Vec<Indicator> = rows
        .iter()
        .filter(|row| row.tlp != Tlp::Red)
        .cloned()
        .collect();
    published.sort_by(|a, b| {
        b.updated_at
            .cmp(&a.updated_at)
            .then_with(|| a.id.as_bytes().cmp(b.id.as_bytes()))
    });
    published
}
