//! The feed's JSON document: `{"data":[…],"pagination":{…},"snapshot":{…},"links":{…}}`.

use std::io::{self, Write};

use serde::Serialize;

use super::{format_timestamp, published_risk_score, Pagination, SnapshotInfo};
use crate::Indicator;

/// One record of `data`, in the feed's camelCase shape, which has no `createdAt` field.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonRecord<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    indicator_type: &'static str,
    value: &'a str,
    category: &'a str,
    risk_score: Option<f64>,
    confidence: Option<i32>,
    tlp: &'static str,
    tags: &'a [String],
    description: Option<&'a str>,
    first_seen: String,
    last_seen: String,
    updated_at: String,
    status: &'static str,
}

impl<'a> JsonRecord<'a> {
    fn new(indicator: &'a Indicator) -> Self {
        Self {
            id: &indicator.id,
            indicator_type: indicator.indicator_type.as_str(),
            value: &indicator.value,
            category: &indicator.category,
            risk_score: published_risk_score(indicator),
            confidence: indicator.confidence,
            tlp: indicator.tlp.as_str(),
            tags: &indicator.tags,
            description: indicator.description.as_deref(),
            first_seen: format_timestamp(indicator.first_seen),
            last_seen: format_timestamp(indicator.last_seen),
            updated_at: format_timestamp(indicator.updated_at),
            status: indicator.status.as_str(),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PaginationBlock {
    page: u64,
    page_size: u64,
    total_items: u64,
    total_pages: u64,
    next_page: Option<u64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SnapshotBlock<'a> {
    id: &'a str,
    generated_at: String,
}

#[derive(Serialize)]
struct LinksBlock<'a> {
    #[serde(rename = "self")]
    self_link: &'a str,
    next: Option<&'a str>,
}

/// The blocks after `data`, serialized when the writer starts and appended by `finish`.
#[derive(Serialize)]
struct Trailer<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pagination: Option<PaginationBlock>,
    snapshot: SnapshotBlock<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    links: Option<LinksBlock<'a>>,
}

/// Streaming writer of the JSON document. Records go out as they are pushed.
pub(super) struct JsonWriter<W: Write> {
    out: W,
    trailer: Vec<u8>,
    rows_written: u64,
}

impl<W: Write> JsonWriter<W> {
    pub(super) fn new(
        mut out: W,
        snapshot: &SnapshotInfo,
        pagination: Option<&Pagination>,
    ) -> io::Result<Self> {
        let trailer = serialize_trailer(snapshot, pagination)?;
        out.write_all(b"{\"data\":[")?;
        Ok(Self {
            out,
            trailer,
            rows_written: 0,
        })
    }

    pub(super) fn push(&mut self, indicator: &Indicator) -> io::Result<()> {
        if self.rows_written > 0 {
            self.out.write_all(b",")?;
        }
        serde_json::to_writer(&mut self.out, &JsonRecord::new(indicator))?;
        self.rows_written += 1;
        Ok(())
    }

    pub(super) fn finish(mut self) -> io::Result<W> {
        self.out.write_all(b"],")?;
        self.out.write_all(&self.trailer)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Serializes the blocks after `data` as `"pagination":…,"snapshot":…,"links":…}`,
/// the closing brace included, so `finish` only has to append them.
fn serialize_trailer(
    snapshot: &SnapshotInfo,
    pagination: Option<&Pagination>,
) -> io::Result<Vec<u8>> {
    let trailer = Trailer {
        pagination: pagination.map(|pagination| PaginationBlock {
            page: pagination.page,
            page_size: pagination.page_size,
            total_items: pagination.total_items,
            total_pages: pagination.total_pages(),
            next_page: pagination.next_page(),
        }),
        snapshot: SnapshotBlock {
            id: &snapshot.id,
            generated_at: format_timestamp(snapshot.generated_at),
        },
        links: pagination.map(|pagination| LinksBlock {
            self_link: &pagination.self_link,
            next: pagination.next_link.as_deref(),
        }),
    };
    let mut bytes = serde_json::to_vec(&trailer)?;
    // `{"pagination":…}` without its opening brace continues the document after `data`.
    bytes.remove(0);
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::super::test_rows::*;
    use super::super::{render_page, PageWriter};
    use crate::snapshot::Format;
    use crate::{IndicatorType, Status};

    fn parse(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).expect("the output is valid JSON")
    }

    #[test]
    fn page_blocks_follow_data_in_order() {
        let row = indicator(
            "3f2b8a6e-1c4d-4e5f-8a9b-0c1d2e3f4a5b",
            IndicatorType::Url,
            "http://a.example/",
        );
        let bytes = render_page(Format::Json, [&row], &snapshot(), &first_of_two_pages());
        let text = String::from_utf8(bytes.clone()).unwrap();

        assert!(text.starts_with("{\"data\":[{\"id\":"), "{text}");
        let pagination_at = text.find("\"pagination\":").unwrap();
        let snapshot_at = text.find("\"snapshot\":").unwrap();
        let links_at = text.find("\"links\":").unwrap();
        assert!(
            pagination_at < snapshot_at && snapshot_at < links_at,
            "{text}"
        );

        let document = parse(&bytes);
        assert_eq!(
            document["pagination"],
            json!({"page": 1, "pageSize": 2, "totalItems": 3, "totalPages": 2, "nextPage": 2})
        );
        assert_eq!(
            document["snapshot"],
            json!({"id": "20250421T123600000Z-0a1b2c3d", "generatedAt": "2025-04-21T12:36:00Z"})
        );
        assert_eq!(
            document["links"],
            json!({"self": "/feeds/indicators?page=1&pageSize=2",
                   "next": "/feeds/indicators?page=2&pageSize=2"})
        );
    }

    #[test]
    fn record_has_the_documented_fields_and_no_created_at() {
        let row = indicator(
            "3f2b8a6e-1c4d-4e5f-8a9b-0c1d2e3f4a5b",
            IndicatorType::Url,
            "http://a.example/",
        );
        let document = parse(&render_page(
            Format::Json,
            [&row],
            &snapshot(),
            &first_of_two_pages(),
        ));
        assert_eq!(
            document["data"][0],
            json!({
                "id": "3f2b8a6e-1c4d-4e5f-8a9b-0c1d2e3f4a5b",
                "type": "url",
                "value": "http://a.example/",
                "category": "phishing",
                "riskScore": 87.5,
                "confidence": 80,
                "tlp": "TLP:AMBER",
                "tags": ["bank", "sms"],
                "description": "Fake bank login",
                "firstSeen": "2025-04-01T08:00:00Z",
                "lastSeen": "2025-04-20T09:30:00.250Z",
                "updatedAt": "2025-04-21T12:35:06Z",
                "status": "active"
            })
        );
    }

    #[test]
    fn unknown_values_are_written_as_null() {
        let mut row = indicator(
            "legacy-1",
            IndicatorType::CryptoWallet,
            "bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh",
        );
        row.risk_score = None;
        row.confidence = None;
        row.description = None;
        row.tags.clear();
        row.status = Status::Revoked;
        let text = String::from_utf8(render_page(
            Format::Json,
            [&row],
            &snapshot(),
            &first_of_two_pages(),
        ))
        .unwrap();
        assert!(
            text.contains("\"riskScore\":null,\"confidence\":null"),
            "{text}"
        );
        assert!(text.contains("\"tags\":[],\"description\":null"), "{text}");
        assert!(text.contains("\"status\":\"revoked\""), "{text}");
    }

    #[test]
    fn a_non_finite_risk_score_is_written_as_null() {
        let mut row = indicator("legacy-2", IndicatorType::Ipv4, "192.0.2.1");
        row.risk_score = Some(f64::NAN);
        let document = parse(&render_page(
            Format::Json,
            [&row],
            &snapshot(),
            &first_of_two_pages(),
        ));
        assert_eq!(document["data"][0]["riskScore"], Value::Null);
    }

    #[test]
    fn last_page_has_null_next_page_and_link() {
        let pagination = super::Pagination {
            page: 2,
            page_size: 2,
            total_items: 3,
            self_link: "/feeds/indicators?page=2&pageSize=2".to_owned(),
            next_link: None,
        };
        let document = parse(&render_page(Format::Json, [], &snapshot(), &pagination));
        assert_eq!(document["data"], json!([]));
        assert_eq!(document["pagination"]["nextPage"], Value::Null);
        assert_eq!(document["links"]["next"], Value::Null);
    }

    #[test]
    fn download_has_only_data_and_snapshot() {
        let rows = [
            indicator("a", IndicatorType::Md5, "d41d8cd98f00b204e9800998ecf8427e"),
            indicator("b", IndicatorType::Email, "\"o'brien\"@example.com"),
        ];
        let mut writer = PageWriter::new(Format::Json, Vec::new(), &snapshot(), None).unwrap();
        for row in &rows {
            writer.push(row).unwrap();
        }
        let document = parse(&writer.finish().unwrap());
        let keys: Vec<&String> = document.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["data", "snapshot"]);
        assert_eq!(document["data"].as_array().unwrap().len(), 2);
        assert_eq!(document["data"][1]["value"], "\"o'brien\"@example.com");
    }

    #[test]
    fn control_characters_and_non_ascii_survive_a_round_trip() {
        let value = "http://пример.example/a\"b\\c\r\nd\u{7}";
        let mut row = indicator("c", IndicatorType::Url, value);
        row.description = Some("line one\r\nline two\ttab".to_owned());
        let document = parse(&render_page(
            Format::Json,
            [&row],
            &snapshot(),
            &first_of_two_pages(),
        ));
        assert_eq!(document["data"][0]["value"], value);
        assert_eq!(
            document["data"][0]["description"],
            "line one\r\nline two\ttab"
        );
    }
}
