//! Reader of newline-delimited JSON: one feed JSON record (camelCase fields) per line.
//!
//! The fields are those of the feed's JSON output: `id`, `type`, `value`, `category`,
//! `riskScore`, `confidence`, `tlp`, `tags`, `description`, `firstSeen`, `lastSeen`, `updatedAt`
//! and `status`. Unknown fields make the line invalid, so a misspelt field is not silently lost.
//! Blank lines are skipped. As in the CSV, `updatedAt` is checked but not stored.

use std::io::BufRead;

use serde::Deserialize;

use super::lines::{LineReader, MAX_RECORD_BYTES};
use super::record::{self, IndicatorRecord};
use super::{ImportError, ParsedRow};

/// One line as the feed's JSON record writes it; optional fields may be absent or null.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct JsonRecord {
    #[serde(default)]
    id: Option<String>,
    #[serde(rename = "type")]
    indicator_type: String,
    value: String,
    category: String,
    #[serde(default)]
    risk_score: Option<f64>,
    #[serde(default)]
    confidence: Option<i64>,
    tlp: String,
    #[serde(default)]
    tags: Option<Vec<String>>,
    #[serde(default)]
    description: Option<String>,
    first_seen: String,
    #[serde(default)]
    last_seen: Option<String>,
    #[serde(default)]
    updated_at: Option<String>,
    #[serde(default)]
    status: Option<String>,
}

/// Reads rows of an NDJSON file.
pub(crate) struct NdjsonReader<R> {
    lines: LineReader<R>,
}

impl<R: BufRead> NdjsonReader<R> {
    pub fn new(input: R) -> Self {
        Self {
            lines: LineReader::new(input),
        }
    }

    /// Reads the next non-blank line, or `None` at the end of the file.
    pub fn next_row(&mut self) -> Result<Option<ParsedRow>, ImportError> {
        loop {
            let Some(line) = self.lines.next_line().map_err(ImportError::Read)? else {
                return Ok(None);
            };
            if line.too_long {
                return Ok(Some(ParsedRow {
                    line: line.number,
                    result: Err(format!("line is longer than {MAX_RECORD_BYTES} bytes")),
                }));
            }
            if line.bytes.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Ok(Some(ParsedRow {
                line: line.number,
                result: parse_line(&line.bytes),
            }));
        }
    }
}

fn parse_line(bytes: &[u8]) -> Result<IndicatorRecord, String> {
    let json: JsonRecord =
        serde_json::from_slice(bytes).map_err(|error| format!("invalid JSON record: {error}"))?;

    let id = record::optional_id(json.id.as_deref().unwrap_or_default())?;
    let indicator_type = record::indicator_type(&json.indicator_type)?;
    let value = record::value(json.value)?;
    let category = record::category(json.category)?;
    let risk_score = record::risk_score(json.risk_score)?;
    let confidence = record::confidence(json.confidence)?;
    let tlp = record::tlp(&json.tlp)?;
    let tags = record::tags(json.tags.unwrap_or_default())?;
    let description = record::description(json.description);
    let first_seen = record::required_timestamp("firstSeen", &json.first_seen)?;
    let last_seen = match json.last_seen.as_deref() {
        None | Some("") => first_seen,
        Some(text) => record::required_timestamp("lastSeen", text)?,
    };
    if let Some(updated_at) = json.updated_at.as_deref().filter(|text| !text.is_empty()) {
        record::required_timestamp("updatedAt", updated_at)?;
    }
    let status = record::status(json.status.as_deref().unwrap_or_default())?;

    Ok(IndicatorRecord {
        id,
        indicator_type,
        value,
        category,
        risk_score,
        confidence,
        tlp,
        tags,
        description,
        first_seen,
        last_seen,
        status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indicator::{IndicatorType, Status};
    use crate::tlp::Tlp;

    #[test]
    fn feed_record_is_read() {
        let line = br#"{"id":null,"type":"domain","value":"evil.example","category":"phishing","riskScore":87.5,"confidence":80,"tlp":"TLP:AMBER","tags":["kit"],"description":null,"firstSeen":"2025-04-01T00:00:00Z","lastSeen":"2025-04-02T00:00:00Z","updatedAt":"2025-04-02T00:00:00Z","status":"revoked"}"#;
        let record = parse_line(line).unwrap();
        assert_eq!(record.indicator_type, IndicatorType::Domain);
        assert_eq!(record.risk_score, Some(87.5));
        assert_eq!(record.confidence, Some(80));
        assert_eq!(record.tlp, Tlp::Amber);
        assert_eq!(record.tags, ["kit"]);
        assert_eq!(record.status, Status::Revoked);
    }

    #[test]
    fn unknown_field_and_wrong_type_are_rejected() {
        let unknown = br#"{"type":"url","value":"http://a","category":"c","tlp":"clear","firstSeen":"2025-04-01","riskscore":5}"#;
        let error = parse_line(unknown).unwrap_err();
        assert!(error.contains("riskscore"), "{error}");
        let wrong = br#"{"type":"url","value":"http://a","category":"c","tlp":"clear","firstSeen":"2025-04-01","riskScore":"high"}"#;
        assert!(parse_line(wrong).is_err());
    }

    #[test]
    fn blank_lines_are_skipped_and_numbers_kept() {
        let text = "\n{\"type\":\"url\",\"value\":\"http://a\",\"category\":\"c\",\"tlp\":\"clear\",\"firstSeen\":\"2025-04-01\"}\n  \nnot json\n";
        let mut reader = NdjsonReader::new(text.as_bytes());
        let first = reader.next_row().unwrap().unwrap();
        assert_eq!(first.line, 2);
        assert!(first.result.is_ok());
        let second = reader.next_row().unwrap().unwrap();
        assert_eq!(second.line, 4);
        assert!(second.result.is_err());
        assert!(reader.next_row().unwrap().is_none());
    }
}
