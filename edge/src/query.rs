//! Parsing of the feed's query parameters and their resolution against a key's scopes and the configuration.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

use partner_feed_shared::config::PartnerFeedSettings;
use partner_feed_shared::keys::KeyScopes;
use partner_feed_shared::query::FeedQuery;
use partner_feed_shared::snapshot::{is_valid_snapshot_id, Format};
use partner_feed_shared::Tlp;

use crate::error::ApiError;
use crate::index::{CategorySelection, Selection};

/// Parameters of `GET /feeds/indicators`.
pub const FEED_PARAMETERS: &[&str] = &[
    "category",
    "minRiskScore",
    "since",
    "tlp",
    "page",
    "pageSize",
    "fmt",
    "snapshot",
];

/// Parameters of `GET /feeds/indicators/download`.
pub const DOWNLOAD_PARAMETERS: &[&str] = &["fmt", "snapshot"];

/// Longest accepted `category` value, in bytes.
const MAX_CATEGORY_LEN: usize = 200;

/// The query parameters of one request, each parsed and checked on its own.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FeedParams {
    /// `category`, lower-cased.
    pub category: Option<String>,
    /// `minRiskScore`.
    pub min_risk_score: Option<f64>,
    /// `since`, in UTC.
    pub since: Option<DateTime<Utc>>,
    /// `tlp`.
    pub tlp: Option<Tlp>,
    /// `page`.
    pub page: Option<u64>,
    /// `pageSize`.
    pub page_size: Option<u64>,
    /// `fmt`.
    pub format: Option<Format>,
    /// `snapshot`.
    pub snapshot: Option<String>,
}

/// A request resolved against the key's scopes: what to select, how to page it, which snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedQuery {
    /// The normalized query, which also builds the canonical links.
    pub query: FeedQuery,
    /// Selection to make from the index.
    pub selection: Selection,
    /// Pinned snapshot id, when given.
    pub snapshot: Option<String>,
}

/// Splits a raw query string into decoded name/value pairs, in order.
pub fn parse_pairs(raw: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw.as_bytes())
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect()
}

/// Parses the pairs of a route that accepts `allowed`; unknown or repeated names are rejected.
pub fn parse_params(
    pairs: &[(String, String)],
    allowed: &[&str],
    max_page_size: u64,
) -> Result<FeedParams, ApiError> {
    check_names(pairs, allowed)?;
    let mut params = FeedParams::default();
    for (name, value) in pairs {
        let invalid = |reason: String| ApiError::InvalidParameter {
            name: name.clone(),
            reason,
        };
        match name.as_str() {
            "category" => params.category = Some(parse_category(value).map_err(invalid)?),
            "minRiskScore" => {
                params.min_risk_score = Some(parse_risk_score(value).map_err(invalid)?)
            }
            "since" => params.since = Some(parse_since(value).map_err(invalid)?),
            "tlp" => params.tlp = Some(parse_tlp(value).map_err(invalid)?),
            "page" => params.page = Some(parse_page(value).map_err(invalid)?),
            "pageSize" => {
                params.page_size = Some(parse_page_size(value, max_page_size).map_err(invalid)?)
            }
            "fmt" => {
                params.format = Some(
                    value
                        .parse::<Format>()
                        .map_err(|_| invalid(format!("{value:?} is not json, csv or stix")))?,
                )
            }
            "snapshot" => params.snapshot = Some(parse_snapshot(value).map_err(invalid)?),
            _ => unreachable!("check_names admits only known parameters"),
        }
    }
    Ok(params)
}

fn check_names(pairs: &[(String, String)], allowed: &[&str]) -> Result<(), ApiError> {
    let mut unknown: Vec<String> = Vec::new();
    for (name, _) in pairs {
        if !allowed.contains(&name.as_str()) && !unknown.contains(name) {
            unknown.push(name.clone());
        }
    }
    if !unknown.is_empty() {
        return Err(ApiError::UnknownParameters {
            names: unknown,
            expected: allowed.join(", "),
        });
    }
    for (position, (name, _)) in pairs.iter().enumerate() {
        if pairs[..position].iter().any(|(earlier, _)| earlier == name) {
            return Err(ApiError::DuplicateParameter { name: name.clone() });
        }
    }
    Ok(())
}

fn parse_category(value: &str) -> Result<String, String> {
    if value.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if value.len() > MAX_CATEGORY_LEN {
        return Err(format!("must be at most {MAX_CATEGORY_LEN} bytes"));
    }
    Ok(value.to_lowercase())
}

fn parse_risk_score(value: &str) -> Result<f64, String> {
    let score: f64 = value
        .trim()
        .parse()
        .map_err(|_| format!("{value:?} is not a number"))?;
    if !(0.0..=100.0).contains(&score) {
        return Err(format!("{value} is outside 0 to 100"));
    }
    Ok(score)
}

/// Parses `since`: RFC 3339 with `Z` or an offset (fractional seconds allowed) or a bare date, read as midnight UTC.
pub fn parse_since(value: &str) -> Result<DateTime<Utc>, String> {
    let text = restore_plus_in_offset(value.trim());
    if let Ok(date) = NaiveDate::parse_from_str(&text, "%Y-%m-%d") {
        return Ok(date
            .and_hms_opt(0, 0, 0)
            .expect("midnight exists")
            .and_utc());
    }
    if let Ok(time) = DateTime::parse_from_rfc3339(&text) {
        return Ok(time.with_timezone(&Utc));
    }
    if chrono::NaiveDateTime::parse_from_str(&text, "%Y-%m-%dT%H:%M:%S%.f").is_ok() {
        return Err(format!(
            "{value:?} has no time zone; add Z or an offset such as +02:00"
        ));
    }
    Err(format!(
        "{value:?} is not an ISO-8601 time such as 2025-04-21T12:00:00Z or a date such as 2025-04-21"
    ))
}

/// Turns a space in the offset back into `+`: an unencoded `+` in a query string decodes as a space.
fn restore_plus_in_offset(text: &str) -> String {
    const DATE_AND_TIME_LEN: usize = "2025-04-21T12:00:00".len();
    if text.len() > DATE_AND_TIME_LEN && text.is_char_boundary(DATE_AND_TIME_LEN) {
        let (date_time, rest) = text.split_at(DATE_AND_TIME_LEN);
        format!("{date_time}{}", rest.replace(' ', "+"))
    } else {
        text.to_owned()
    }
}

fn parse_tlp(value: &str) -> Result<Tlp, String> {
    let tlp: Tlp = value.trim().replace(' ', "+").parse().map_err(|_| {
        format!("{value:?} is not TLP:CLEAR, TLP:WHITE, TLP:GREEN, TLP:AMBER or TLP:AMBER+STRICT")
    })?;
    if tlp == Tlp::Red {
        return Err("TLP:RED indicators are never served".to_owned());
    }
    Ok(tlp)
}

fn parse_page(value: &str) -> Result<u64, String> {
    match value.parse::<u64>() {
        Ok(page) if page >= 1 => Ok(page),
        _ => Err(format!("{value:?} is not a whole number of 1 or more")),
    }
}

fn parse_page_size(value: &str, max_page_size: u64) -> Result<u64, String> {
    match value.parse::<u64>() {
        Ok(size) if (1..=max_page_size).contains(&size) => Ok(size),
        _ => Err(format!(
            "{value:?} is not a whole number from 1 to {max_page_size}"
        )),
    }
}

fn parse_snapshot(value: &str) -> Result<String, String> {
    if is_valid_snapshot_id(value) {
        Ok(value.to_owned())
    } else {
        Err(format!("{value:?} is not a snapshot id"))
    }
}

/// Applies defaults and the key's scopes; an explicit `tlp` or `category` beyond them is rejected with 403.
pub fn resolve(
    params: &FeedParams,
    scopes: &KeyScopes,
    feed: &PartnerFeedSettings,
) -> Result<ResolvedQuery, ApiError> {
    let tlp = match params.tlp {
        Some(requested) if requested > scopes.max_tlp => {
            return Err(ApiError::TlpOutOfScope {
                requested,
                allowed: scopes.max_tlp,
            })
        }
        Some(requested) => requested,
        None => feed.default_tlp.min(scopes.max_tlp),
    };
    let categories = match &params.category {
        Some(category) if !scopes.allows_category(category) => {
            return Err(ApiError::CategoryOutOfScope {
                category: category.clone(),
            })
        }
        Some(category) => CategorySelection::One(category.clone()),
        None if scopes.categories.is_empty() => CategorySelection::All,
        None => CategorySelection::AnyOf(scopes.categories.clone()),
    };
    let query = FeedQuery {
        category: params.category.clone(),
        min_risk_score: params.min_risk_score,
        since: params.since,
        tlp,
        page: params.page.unwrap_or(1),
        page_size: params
            .page_size
            .unwrap_or(u64::from(feed.default_page_size)),
        format: params.format.unwrap_or(Format::Json),
    };
    let selection = Selection {
        categories,
        min_risk_score: params.min_risk_score,
        since: params.since,
        tlp,
        include_revoked: params.since.is_some(),
    };
    Ok(ResolvedQuery {
        query,
        selection,
        snapshot: params.snapshot.clone(),
    })
}

impl ResolvedQuery {
    /// Returns the effective query as the JSON object stored in `partner_feed_audit.query_params`.
    pub fn audit_json(&self) -> Value {
        let query = &self.query;
        let mut object = Map::new();
        if let Some(category) = &query.category {
            object.insert("category".into(), json!(category));
        }
        if let Some(score) = query.min_risk_score {
            object.insert("minRiskScore".into(), json!(score));
        }
        if let Some(since) = query.since {
            object.insert(
                "since".into(),
                json!(since.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
            );
        }
        object.insert("tlp".into(), json!(query.tlp.as_str()));
        object.insert("page".into(), json!(query.page));
        object.insert("pageSize".into(), json!(query.page_size));
        object.insert("fmt".into(), json!(query.format.as_str()));
        if let Some(snapshot) = &self.snapshot {
            object.insert("snapshot".into(), json!(snapshot));
        }
        Value::Object(object)
    }
}

/// Returns the raw parameters as a JSON object for the audit of a request that was not parsed.
///
/// Values of parameters outside `allowed`, and any value equal to the presented key, are left
/// out, so a key sent in the wrong place is never stored.
pub fn raw_audit_json(
    pairs: &[(String, String)],
    allowed: &[&str],
    presented_key: Option<&str>,
) -> Value {
    let mut object = Map::new();
    for (name, value) in pairs {
        let known = allowed.contains(&name.as_str());
        let is_key = presented_key.is_some_and(|key| !key.is_empty() && value.contains(key));
        let value = if known && !is_key {
            json!(value)
        } else {
            Value::Null
        };
        match object.get_mut(name) {
            Some(Value::Array(values)) => values.push(value),
            Some(existing) => *existing = json!([existing.clone(), value]),
            None => {
                object.insert(name.clone(), value);
            }
        }
    }
    Value::Object(object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn pairs(raw: &str) -> Vec<(String, String)> {
        parse_pairs(raw)
    }

    fn parse(raw: &str) -> Result<FeedParams, ApiError> {
        parse_params(&pairs(raw), FEED_PARAMETERS, 500)
    }

    fn invalid_name(raw: &str) -> String {
        match parse(raw) {
            Err(ApiError::InvalidParameter { name, .. }) => name,
            other => panic!("{raw}: expected an invalid parameter, got {other:?}"),
        }
    }

    #[test]
    fn since_accepts_every_documented_form() {
        let noon = Utc.with_ymd_and_hms(2025, 4, 21, 12, 0, 0).unwrap();
        for text in [
            "2025-04-21T12:00:00Z",
            "2025-04-21T14:00:00+02:00",
            "2025-04-21T14:00:00 02:00",
            "2025-04-21T07:00:00-05:00",
            "2025-04-21T12:00:00.000Z",
        ] {
            assert_eq!(parse_since(text), Ok(noon), "{text}");
        }
        assert_eq!(
            parse_since("2025-04-21T12:00:00.25Z")
                .unwrap()
                .timestamp_subsec_millis(),
            250
        );
        assert_eq!(
            parse_since("2025-04-21"),
            Ok(Utc.with_ymd_and_hms(2025, 4, 21, 0, 0, 0).unwrap())
        );
    }

    #[test]
    fn since_rejects_times_without_zone_and_garbage() {
        assert!(parse_since("2025-04-21T12:00:00")
            .unwrap_err()
            .contains("time zone"));
        for text in ["yesterday", "2025-13-01", "", "2025-04-21T25:00:00Z"] {
            assert!(parse_since(text).is_err(), "{text}");
        }
    }

    #[test]
    fn each_bad_value_names_its_parameter() {
        assert_eq!(invalid_name("minRiskScore=101"), "minRiskScore");
        assert_eq!(invalid_name("minRiskScore=-1"), "minRiskScore");
        assert_eq!(invalid_name("minRiskScore=NaN"), "minRiskScore");
        assert_eq!(invalid_name("page=0"), "page");
        assert_eq!(invalid_name("page=-2"), "page");
        assert_eq!(invalid_name("page=1.5"), "page");
        assert_eq!(invalid_name("pageSize=0"), "pageSize");
        assert_eq!(invalid_name("pageSize=501"), "pageSize");
        assert_eq!(invalid_name("fmt=xml"), "fmt");
        assert_eq!(invalid_name("tlp=TLP:RED"), "tlp");
        assert_eq!(invalid_name("tlp=purple"), "tlp");
        assert_eq!(invalid_name("category="), "category");
        assert_eq!(invalid_name("snapshot=../x"), "snapshot");
        assert_eq!(invalid_name("since=soon"), "since");
    }

    #[test]
    fn unknown_and_repeated_parameters_are_rejected() {
        match parse("limit=5&page=1&offset=2") {
            Err(ApiError::UnknownParameters { names, .. }) => {
                assert_eq!(names, ["limit", "offset"])
            }
            other => panic!("{other:?}"),
        }
        match parse("page=1&page=2") {
            Err(ApiError::DuplicateParameter { name }) => assert_eq!(name, "page"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_params(&pairs("page=1"), DOWNLOAD_PARAMETERS, 500),
            Err(ApiError::UnknownParameters { .. })
        ));
    }

    #[test]
    fn tlp_accepts_white_and_missing_prefix() {
        assert_eq!(parse("tlp=TLP:WHITE").unwrap().tlp, Some(Tlp::Clear));
        assert_eq!(parse("tlp=green").unwrap().tlp, Some(Tlp::Green));
        assert_eq!(
            parse("tlp=amber+strict").unwrap().tlp,
            Some(Tlp::AmberStrict)
        );
        assert_eq!(
            parse("tlp=TLP%3AAMBER%2BSTRICT").unwrap().tlp,
            Some(Tlp::AmberStrict)
        );
    }

    #[test]
    fn resolve_applies_scope_and_defaults() {
        let feed = PartnerFeedSettings::default();
        let green_phishing = KeyScopes::parse(&["tlp:green", "category:phishing"]).unwrap();

        let resolved = resolve(&parse("").unwrap(), &green_phishing, &feed).unwrap();
        assert_eq!(resolved.query.tlp, Tlp::Green);
        assert_eq!(resolved.query.page, 1);
        assert_eq!(resolved.query.page_size, 50);
        assert_eq!(
            resolved.selection.categories,
            CategorySelection::AnyOf(vec!["phishing".into()])
        );

        assert!(matches!(
            resolve(&parse("tlp=amber").unwrap(), &green_phishing, &feed),
            Err(ApiError::TlpOutOfScope { .. })
        ));
        assert!(matches!(
            resolve(
                &parse("category=crypto_drainer").unwrap(),
                &green_phishing,
                &feed
            ),
            Err(ApiError::CategoryOutOfScope { .. })
        ));
        let resolved = resolve(
            &parse("category=PHISHING&since=2025-01-01").unwrap(),
            &green_phishing,
            &feed,
        )
        .unwrap();
        assert_eq!(
            resolved.selection.categories,
            CategorySelection::One("phishing".into())
        );
        assert!(resolved.selection.include_revoked);
    }

    #[test]
    fn raw_audit_json_drops_key() {
        let raw = pairs("apikey=SECRETKEY123&page=2&page=3&category=SECRETKEY123");
        let value = raw_audit_json(&raw, FEED_PARAMETERS, Some("SECRETKEY123"));
        assert_eq!(
            value,
            json!({"apikey": null, "page": ["2", "3"], "category": null})
        );
    }
}
