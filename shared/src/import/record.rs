//! A validated row of an import file and the checks every format shares.

use chrono::{DateTime, NaiveDate, NaiveDateTime, SubsecRound, Utc};

use crate::indicator::{Indicator, IndicatorType, Status};
use crate::tlp::Tlp;

/// A row of an import file that passed validation, before it is matched against the table.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct IndicatorRecord {
    /// Id given by the file, in canonical UUID form; the table's id wins for an existing row.
    pub id: Option<String>,
    pub indicator_type: IndicatorType,
    pub value: String,
    pub category: String,
    pub risk_score: Option<f64>,
    pub confidence: Option<i32>,
    pub tlp: Tlp,
    pub tags: Vec<String>,
    pub description: Option<String>,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub status: Status,
}

impl IndicatorRecord {
    /// Returns true when any stored field of `indicator` differs from this record.
    pub fn differs_from(&self, indicator: &Indicator) -> bool {
        self.category != indicator.category
            || self.risk_score != indicator.risk_score
            || self.confidence != indicator.confidence
            || self.tlp != indicator.tlp
            || self.tags != indicator.tags
            || self.description != indicator.description
            || self.first_seen != indicator.first_seen
            || self.last_seen != indicator.last_seen
            || self.status != indicator.status
    }

    /// Copies this record's fields onto `indicator`, leaving its id and timestamps of record alone.
    pub fn apply_to(&self, indicator: &mut Indicator) {
        indicator.category.clone_from(&self.category);
        indicator.risk_score = self.risk_score;
        indicator.confidence = self.confidence;
        indicator.tlp = self.tlp;
        indicator.tags.clone_from(&self.tags);
        indicator.description.clone_from(&self.description);
        indicator.first_seen = self.first_seen;
        indicator.last_seen = self.last_seen;
        indicator.status = self.status;
    }

    /// Builds the row to insert for this record under `id`, created and updated at `now`.
    pub fn to_new_indicator(&self, id: String, now: DateTime<Utc>) -> Indicator {
        Indicator {
            id,
            indicator_type: self.indicator_type,
            value: self.value.clone(),
            category: self.category.clone(),
            risk_score: self.risk_score,
            confidence: self.confidence,
            tlp: self.tlp,
            tags: self.tags.clone(),
            description: self.description.clone(),
            first_seen: self.first_seen,
            last_seen: self.last_seen,
            created_at: now,
            updated_at: now,
            status: self.status,
        }
    }
}

/// Error returned when a text is not a timestamp the importer and the CLI accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid timestamp {0:?}: expected RFC 3339 such as 2025-04-21T12:35:06Z, \
     \"YYYY-MM-DD HH:MM:SS\" in UTC, or a date such as 2025-04-21 (midnight UTC)"
)]
pub struct InvalidTimestamp(pub String);

/// Parses a timestamp: RFC 3339 with any offset, `YYYY-MM-DD HH:MM:SS[.fff]` (or with `T`) read
/// as UTC, or a bare date read as midnight UTC.
///
/// The result is truncated to microseconds, the precision PostgreSQL stores, so a value read
/// back from either database compares equal to the one parsed.
pub fn parse_timestamp(text: &str) -> Result<DateTime<Utc>, InvalidTimestamp> {
    let trimmed = text.trim();
    let parsed = DateTime::parse_from_rfc3339(trimmed)
        .map(|time| time.with_timezone(&Utc))
        .or_else(|_| {
            NaiveDateTime::parse_from_str(trimmed, "%Y-%m-%d %H:%M:%S%.f").map(|t| t.and_utc())
        })
        .or_else(|_| {
            NaiveDateTime::parse_from_str(trimmed, "%Y-%m-%dT%H:%M:%S%.f").map(|t| t.and_utc())
        })
        .or_else(|_| {
            NaiveDate::parse_from_str(trimmed, "%Y-%m-%d")
                .map(|date| date.and_time(chrono::NaiveTime::MIN).and_utc())
        })
        .map_err(|_| InvalidTimestamp(text.to_owned()))?;
    Ok(parsed.trunc_subsecs(6))
}

/// Reads a required timestamp column.
pub(crate) fn required_timestamp(column: &str, text: &str) -> Result<DateTime<Utc>, String> {
    if text.trim().is_empty() {
        return Err(format!("{column} is missing"));
    }
    parse_timestamp(text).map_err(|error| format!("{column}: {error}"))
}

/// Reads the `id` column: empty means a new id is generated; anything else must be a UUID.
pub(crate) fn optional_id(text: &str) -> Result<Option<String>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    uuid::Uuid::parse_str(text)
        .map(|id| Some(id.hyphenated().to_string()))
        .map_err(|_| format!("invalid id {text:?}: expected a UUID or an empty cell"))
}

/// Reads the `type` column.
pub(crate) fn indicator_type(text: &str) -> Result<IndicatorType, String> {
    text.parse().map_err(|error| format!("{error}"))
}

/// Checks the `value` column: it must hold more than white space and is kept byte for byte.
pub(crate) fn value(text: String) -> Result<String, String> {
    if text.trim().is_empty() {
        return Err("value is empty".to_owned());
    }
    Ok(text)
}

/// Checks the `category` column, which must not be empty.
pub(crate) fn category(text: String) -> Result<String, String> {
    if text.trim().is_empty() {
        return Err("category is empty".to_owned());
    }
    Ok(text)
}

/// Checks a risk score: finite and from 0 to 100.
pub(crate) fn risk_score(score: Option<f64>) -> Result<Option<f64>, String> {
    match score {
        Some(score) if !(0.0..=100.0).contains(&score) => Err(format!(
            "invalid risk_score {score}: must be between 0 and 100"
        )),
        _ => Ok(score),
    }
}

/// Reads a risk score cell; empty means none.
pub(crate) fn risk_score_text(text: &str) -> Result<Option<f64>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    let score: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("invalid risk_score {text:?}: expected a number from 0 to 100"))?;
    risk_score(Some(score))
}

/// Checks a confidence: from 0 to 100.
pub(crate) fn confidence(value: Option<i64>) -> Result<Option<i32>, String> {
    match value {
        None => Ok(None),
        Some(value @ 0..=100) => Ok(Some(value as i32)),
        Some(value) => Err(format!(
            "invalid confidence {value}: must be between 0 and 100"
        )),
    }
}

/// Reads a confidence cell; empty means none.
pub(crate) fn confidence_text(text: &str) -> Result<Option<i32>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    let value: i64 = text.trim().parse().map_err(|_| {
        format!("invalid confidence {text:?}: expected a whole number from 0 to 100")
    })?;
    confidence(Some(value))
}

/// Reads the `tlp` column (`TLP:` prefix and case optional, `WHITE` read as `CLEAR`).
pub(crate) fn tlp(text: &str) -> Result<Tlp, String> {
    if text.trim().is_empty() {
        return Err("tlp is missing".to_owned());
    }
    text.parse().map_err(|error| format!("{error}"))
}

/// Checks tags: empty ones are dropped, and none may contain `;`, the CSV tag separator.
pub(crate) fn tags(tags: impl IntoIterator<Item = String>) -> Result<Vec<String>, String> {
    let mut checked = Vec::new();
    for tag in tags {
        if tag.contains(';') {
            return Err(format!(
                "invalid tag {tag:?}: a tag cannot contain ';', the CSV tag separator"
            ));
        }
        if !tag.is_empty() {
            checked.push(tag);
        }
    }
    Ok(checked)
}

/// Reads a description; an empty one is stored as null, as the CSV writes null.
pub(crate) fn description(text: Option<String>) -> Option<String> {
    text.filter(|text| !text.is_empty())
}

/// Reads the `status` column; empty means `active`.
pub(crate) fn status(text: &str) -> Result<Status, String> {
    if text.is_empty() {
        return Ok(Status::Active);
    }
    text.parse().map_err(|error| format!("{error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_accept_rfc3339_space_form_and_dates() {
        let expected: DateTime<Utc> = "2025-04-21T12:35:06Z".parse().unwrap();
        for text in [
            "2025-04-21T12:35:06Z",
            "2025-04-21T14:35:06+02:00",
            "2025-04-21 12:35:06",
            "2025-04-21T12:35:06",
        ] {
            assert_eq!(parse_timestamp(text), Ok(expected), "{text}");
        }
        assert_eq!(
            parse_timestamp("2025-04-21"),
            Ok("2025-04-21T00:00:00Z".parse().unwrap())
        );
    }

    #[test]
    fn timestamps_are_truncated_to_microseconds() {
        let parsed = parse_timestamp("2025-04-21T12:35:06.123456789Z").unwrap();
        assert_eq!(
            parsed,
            "2025-04-21T12:35:06.123456Z"
                .parse::<DateTime<Utc>>()
                .unwrap()
        );
    }

    #[test]
    fn timestamps_reject_other_text() {
        for text in [
            "",
            "yesterday",
            "2025-13-01",
            "21/04/2025",
            "2025-04-21 25:00:00",
        ] {
            assert!(parse_timestamp(text).is_err(), "{text}");
        }
    }

    #[test]
    fn scores_and_confidence_outside_range_are_rejected() {
        assert_eq!(risk_score_text("87.5"), Ok(Some(87.5)));
        assert_eq!(risk_score_text(""), Ok(None));
        assert!(risk_score_text("100.1").is_err());
        assert!(risk_score_text("-1").is_err());
        assert!(risk_score_text("NaN").is_err());
        assert_eq!(confidence_text("80"), Ok(Some(80)));
        assert!(confidence_text("101").is_err());
        assert!(confidence_text("8.5").is_err());
    }

    #[test]
    fn tags_reject_semicolons_and_drop_empty_ones() {
        assert_eq!(
            tags(["a".to_owned(), String::new(), "b".to_owned()]),
            Ok(vec!["a".to_owned(), "b".to_owned()])
        );
        assert!(tags(["a;b".to_owned()]).is_err());
    }

    #[test]
    fn ids_must_be_uuids_and_are_made_canonical() {
        assert_eq!(optional_id(""), Ok(None));
        assert_eq!(
            optional_id("6F9619FF-8B86-D011-B42D-00C04FC964FF"),
            Ok(Some("6f9619ff-8b86-d011-b42d-00c04fc964ff".to_owned()))
        );
        assert!(optional_id("indicator-1").is_err());
    }
}
