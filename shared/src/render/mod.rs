//! Renderers of feed pages and full downloads in JSON, CSV and STIX 2.1.
//!
//! The publisher stores the bytes these renderers produce, and the edge renders other
//! pages with the same code, so the output is deterministic: the same rows, snapshot
//! and pagination always give byte-identical output, which the ETags rely on.

pub mod csv;
pub mod json;
pub mod stix;

use std::io::{self, Write};

use chrono::{DateTime, SecondsFormat, Utc};
use tracing::error;

use crate::snapshot::Format;
use crate::tlp::Tlp;
use crate::Indicator;

/// The snapshot a page or download comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// Snapshot id.
    pub id: String,
    /// Time the publisher read the source for this snapshot.
    pub generated_at: DateTime<Utc>,
}

/// Position of a page in a query's result, and the links to it and to the next page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pagination {
    /// Page number, counted from 1.
    pub page: u64,
    /// Rows per page.
    pub page_size: u64,
    /// Rows in the whole result, on all pages.
    pub total_items: u64,
    /// URL of this page.
    pub self_link: String,
    /// URL of the next page, or `None` on the last page.
    pub next_link: Option<String>,
}

impl Pagination {
    /// Returns the number of pages, `ceil(total_items / page_size)`, or 0 when `page_size` is 0.
    pub fn total_pages(&self) -> u64 {
        if self.page_size == 0 {
            return 0;
        }
        self.total_items.div_ceil(self.page_size)
    }

    /// Returns `page + 1` when a page follows this one, else `None`.
    pub fn next_page(&self) -> Option<u64> {
        (self.page < self.total_pages()).then(|| self.page + 1)
    }
}

/// Streaming writer of one page or download: a header on creation, one record per
/// [`push`](Self::push), the closing part on [`finish`](Self::finish).
///
/// Memory stays constant whatever the number of rows pushed. Every record is written to
/// `out` as it is pushed, in many small writes, so `out` should be buffered (a
/// `BufWriter`, a gzip encoder or a `Vec`).
pub struct PageWriter<W: Write> {
    inner: FormatWriter<W>,
}

enum FormatWriter<W: Write> {
    Json(json::JsonWriter<W>),
    // Boxed because the CSV writer keeps its state inline and is far larger than the others.
    Csv(Box<csv::CsvWriter<W>>),
    Stix(stix::StixWriter<W>),
}

impl<W: Write> PageWriter<W> {
    /// Starts a document in `format` and writes its opening part to `out`.
    ///
    /// `pagination` is `None` for a full download: the JSON document then has no
    /// `pagination` and `links` blocks, and the STIX bundle id is derived from the
    /// snapshot alone. CSV carries neither, because the edge sends them as headers.
    pub fn new(
        format: Format,
        out: W,
        snapshot: &SnapshotInfo,
        pagination: Option<&Pagination>,
    ) -> io::Result<Self> {
        let inner = match format {
            Format::Json => FormatWriter::Json(json::JsonWriter::new(out, snapshot, pagination)?),
            Format::Csv => FormatWriter::Csv(Box::new(csv::CsvWriter::new(out)?)),
            Format::Stix => FormatWriter::Stix(stix::StixWriter::new(out, snapshot, pagination)?),
        };
        Ok(Self { inner })
    }

    /// Writes one indicator.
    ///
    /// Returns an `InvalidInput` error, and writes nothing, for a `TLP:RED` indicator,
    /// because RED indicators never leave the platform.
    pub fn push(&mut self, indicator: &Indicator) -> io::Result<()> {
        if indicator.tlp == Tlp::Red {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "indicator {} is TLP:RED and must not be rendered into a feed",
                    indicator.id
                ),
            ));
        }
        match &mut self.inner {
            FormatWriter::Json(writer) => writer.push(indicator),
            FormatWriter::Csv(writer) => writer.push(indicator),
            FormatWriter::Stix(writer) => writer.push(indicator),
        }
    }

    /// Writes the closing part of the document and returns `out`, flushed.
    pub fn finish(self) -> io::Result<W> {
        match self.inner {
            FormatWriter::Json(writer) => writer.finish(),
            FormatWriter::Csv(writer) => writer.finish(),
            FormatWriter::Stix(writer) => writer.finish(),
        }
    }
}

/// Renders one page in memory.
///
/// A `TLP:RED` row is left out and logged as an error, because RED indicators never
/// leave the platform and a page must still be served.
pub fn render_page<'a>(
    format: Format,
    rows: impl IntoIterator<Item = &'a Indicator>,
    snapshot: &SnapshotInfo,
    pagination: &Pagination,
) -> Vec<u8> {
    // Writing to a Vec cannot fail, and serde_json cannot fail on the renderers' records
    // (structs with string keys), so the expects below only fire on a renderer bug.
    let mut writer = PageWriter::new(format, Vec::new(), snapshot, Some(pagination))
        .expect("rendering into memory cannot fail");
    for row in rows {
        if row.tlp == Tlp::Red {
            error!(indicator_id = %row.id, "TLP:RED indicator left out of a rendered page");
            continue;
        }
        writer.push(row).expect("rendering into memory cannot fail");
    }
    writer.finish().expect("rendering into memory cannot fail")
}

/// Formats a timestamp as RFC 3339 in UTC with a `Z`, with fractional seconds only
/// when they are not zero (`2025-04-21T12:35:06Z`, `2025-04-21T12:35:06.250Z`).
///
/// This is the form of every timestamp in the JSON and CSV output, so both read the same.
pub fn format_timestamp(timestamp: DateTime<Utc>) -> String {
    timestamp.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Returns the risk score to publish: `None` when unknown or not a finite number.
fn published_risk_score(indicator: &Indicator) -> Option<f64> {
    indicator.risk_score.filter(|score| score.is_finite())
}

#[cfg(test)]
pub(crate) mod test_rows {
    //! Indicators shared by the renderers' unit tests.

    use chrono::{DateTime, Utc};

    use super::{Pagination, SnapshotInfo};
    use crate::{Indicator, IndicatorType, Status, Tlp};

    pub fn at(text: &str) -> DateTime<Utc> {
        text.parse().expect("test timestamp")
    }

    pub fn indicator(id: &str, indicator_type: IndicatorType, value: &str) -> Indicator {
        Indicator {
            id: id.to_owned(),
            indicator_type,
            value: value.to_owned(),
            category: "phishing".to_owned(),
            risk_score: Some(87.5),
            confidence: Some(80),
            tlp: Tlp::Amber,
            tags: vec!["bank".to_owned(), "sms".to_owned()],
            description: Some("Fake bank login".to_owned()),
            first_seen: at("2025-04-01T08:00:00Z"),
            last_seen: at("2025-04-20T09:30:00.250Z"),
            created_at: at("2025-04-01T08:05:00Z"),
            updated_at: at("2025-04-21T12:35:06Z"),
            status: Status::Active,
        }
    }

    pub fn snapshot() -> SnapshotInfo {
        SnapshotInfo {
            id: "20250421T123600000Z-0a1b2c3d".to_owned(),
            generated_at: at("2025-04-21T12:36:00Z"),
        }
    }

    pub fn first_of_two_pages() -> Pagination {
        Pagination {
            page: 1,
            page_size: 2,
            total_items: 3,
            self_link: "/feeds/indicators?page=1&pageSize=2".to_owned(),
            next_link: Some("/feeds/indicators?page=2&pageSize=2".to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_rows::*;
    use super::*;
    use crate::IndicatorType;

    fn pagination(page: u64, page_size: u64, total_items: u64) -> Pagination {
        Pagination {
            page,
            page_size,
            total_items,
            self_link: String::new(),
            next_link: None,
        }
    }

    #[test]
    fn total_pages_rounds_up() {
        assert_eq!(pagination(1, 50, 0).total_pages(), 0);
        assert_eq!(pagination(1, 50, 1).total_pages(), 1);
        assert_eq!(pagination(1, 50, 50).total_pages(), 1);
        assert_eq!(pagination(1, 50, 51).total_pages(), 2);
        assert_eq!(pagination(1, 0, 10).total_pages(), 0);
    }

    #[test]
    fn next_page_stops_at_the_last_page() {
        assert_eq!(pagination(1, 50, 120).next_page(), Some(2));
        assert_eq!(pagination(2, 50, 120).next_page(), Some(3));
        assert_eq!(pagination(3, 50, 120).next_page(), None);
        assert_eq!(pagination(9, 50, 120).next_page(), None);
        assert_eq!(pagination(1, 50, 0).next_page(), None);
    }

    #[test]
    fn timestamps_use_z_and_needed_fraction() {
        assert_eq!(
            format_timestamp(at("2025-04-21T12:35:06+02:00")),
            "2025-04-21T10:35:06Z"
        );
        assert_eq!(
            format_timestamp(at("2025-04-21T12:35:06.250Z")),
            "2025-04-21T12:35:06.250Z"
        );
        assert_eq!(
            format_timestamp(at("2025-04-21T12:35:06.000001Z")),
            "2025-04-21T12:35:06.000001Z"
        );
    }

    #[test]
    fn push_rejects_a_red_indicator_in_every_format() {
        let mut red = indicator(
            "3f2b8a6e-1c4d-4e5f-8a9b-0c1d2e3f4a5b",
            IndicatorType::Url,
            "http://red.example/",
        );
        red.tlp = Tlp::Red;
        for format in Format::ALL {
            let mut writer = PageWriter::new(format, Vec::new(), &snapshot(), None).unwrap();
            let error = writer.push(&red).unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{format}");
            let bytes = writer.finish().unwrap();
            assert!(
                !String::from_utf8(bytes).unwrap().contains("red.example"),
                "{format} output contains the RED value"
            );
        }
    }

    #[test]
    fn render_page_leaves_out_red_rows() {
        let amber = indicator(
            "3f2b8a6e-1c4d-4e5f-8a9b-0c1d2e3f4a5b",
            IndicatorType::Url,
            "http://amber.example/",
        );
        let mut red = indicator(
            "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a",
            IndicatorType::Url,
            "http://red.example/",
        );
        red.tlp = Tlp::Red;
        for format in Format::ALL {
            let bytes = render_page(format, [&amber, &red], &snapshot(), &first_of_two_pages());
            let text = String::from_utf8(bytes).unwrap();
            assert!(text.contains("amber.example"), "{format}");
            assert!(!text.contains("red.example"), "{format}");
        }
    }

    #[test]
    fn render_page_is_deterministic() {
        let rows = [
            indicator(
                "3f2b8a6e-1c4d-4e5f-8a9b-0c1d2e3f4a5b",
                IndicatorType::Url,
                "http://a.example/'x",
            ),
            indicator("legacy-17", IndicatorType::Phone, "+44 20 7946 0958"),
        ];
        for format in Format::ALL {
            let first = render_page(format, &rows, &snapshot(), &first_of_two_pages());
            let second = render_page(format, &rows, &snapshot(), &first_of_two_pages());
            assert_eq!(first, second, "{format}");
        }
    }

    #[test]
    fn page_writer_output_equals_render_page() {
        let rows = [indicator(
            "3f2b8a6e-1c4d-4e5f-8a9b-0c1d2e3f4a5b",
            IndicatorType::Domain,
            "xn--80ak6aa92e.com",
        )];
        for format in Format::ALL {
            let pagination = first_of_two_pages();
            let mut writer =
                PageWriter::new(format, Vec::new(), &snapshot(), Some(&pagination)).unwrap();
            for row in &rows {
                writer.push(row).unwrap();
            }
            let streamed = writer.finish().unwrap();
            assert_eq!(
                streamed,
                render_page(format, &rows, &snapshot(), &pagination),
                "{format}"
            );
        }
    }
}
