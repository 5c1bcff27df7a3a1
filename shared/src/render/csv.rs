//! The feed's CSV: RFC 4180, CRLF line ends, a header row, one indicator per record.

use std::io::{self, Write};

use csv::{QuoteStyle, Terminator, WriterBuilder};
use tracing::warn;

use super::{format_timestamp, published_risk_score};
use crate::Indicator;

/// The header row, which the importer's native CSV format reads too.
pub const HEADER: [&str; 13] = [
    "id",
    "type",
    "value",
    "category",
    "risk_score",
    "confidence",
    "tlp",
    "tags",
    "description",
    "first_seen",
    "last_seen",
    "updated_at",
    "status",
];

/// Separator of the tags inside the `tags` cell.
pub const TAG_SEPARATOR: char = ';';

/// Streaming writer of the CSV. Records go out as they are pushed.
pub(super) struct CsvWriter<W: Write> {
    writer: csv::Writer<W>,
}

impl<W: Write> CsvWriter<W> {
    pub(super) fn new(out: W) -> io::Result<Self> {
        let mut writer = WriterBuilder::new()
            .terminator(Terminator::CRLF)
            .quote_style(QuoteStyle::Necessary)
            .from_writer(out);
        writer.write_record(HEADER)?;
        Ok(Self { writer })
    }

    pub(super) fn push(&mut self, indicator: &Indicator) -> io::Result<()> {
        let risk_score = published_risk_score(indicator)
            .map(|score| score.to_string())
            .unwrap_or_default();
        let confidence = indicator
            .confidence
            .map(|confidence| confidence.to_string())
            .unwrap_or_default();
        self.writer.write_record([
            indicator.id.as_str(),
            indicator.indicator_type.as_str(),
            &indicator.value,
            &indicator.category,
            &risk_score,
            &confidence,
            indicator.tlp.as_str(),
            &join_tags(indicator),
            indicator.description.as_deref().unwrap_or(""),
            &format_timestamp(indicator.first_seen),
            &format_timestamp(indicator.last_seen),
            &format_timestamp(indicator.updated_at),
            indicator.status.as_str(),
        ])?;
        Ok(())
    }

    pub(super) fn finish(self) -> io::Result<W> {
        self.writer.into_inner().map_err(|error| error.into_error())
    }
}

/// Joins the tags with `;`. A `;` inside a tag would split it on import, so it is
/// written as `,` and a warning names the indicator.
fn join_tags(indicator: &Indicator) -> String {
    if indicator.tags.iter().any(|tag| tag.contains(TAG_SEPARATOR)) {
        warn!(
            indicator_id = %indicator.id,
            "a tag contains ';', which separates tags in CSV; written as ','"
        );
        let tags: Vec<String> = indicator
            .tags
            .iter()
            .map(|tag| tag.replace(TAG_SEPARATOR, ","))
            .collect();
        return tags.join(";");
    }
    indicator.tags.join(";")
}

#[cfg(test)]
mod tests {
    use super::super::test_rows::*;
    use super::super::{render_page, PageWriter, SnapshotInfo};
    use crate::snapshot::Format;
    use crate::{Indicator, IndicatorType, Status, Tlp};

    const HEADER_LINE: &str = "id,type,value,category,risk_score,confidence,tlp,tags,description,first_seen,last_seen,updated_at,status\r\n";

    fn render(rows: &[Indicator]) -> String {
        let bytes = render_page(Format::Csv, rows, &snapshot(), &first_of_two_pages());
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn plain_row_is_unquoted_and_ends_in_crlf() {
        let text = render(&[indicator(
            "3f2b8a6e-1c4d-4e5f-8a9b-0c1d2e3f4a5b",
            IndicatorType::Url,
            "http://a.example/x",
        )]);
        assert_eq!(
            text,
            format!(
                "{HEADER_LINE}3f2b8a6e-1c4d-4e5f-8a9b-0c1d2e3f4a5b,url,http://a.example/x,phishing,87.5,80,TLP:AMBER,bank;sms,Fake bank login,2025-04-01T08:00:00Z,2025-04-20T09:30:00.250Z,2025-04-21T12:35:06Z,active\r\n"
            )
        );
    }

    #[test]
    fn empty_page_is_the_header_alone() {
        assert_eq!(render(&[]), HEADER_LINE);
    }

    #[test]
    fn quoting_only_where_rfc_4180_requires() {
        let mut row = indicator("a", IndicatorType::Url, "http://a.example/?q=1,2");
        row.description = Some("said \"hi\"\r\nthen left".to_owned());
        row.category = " padded ".to_owned();
        let text = render(&[row]);
        let record = text.strip_prefix(HEADER_LINE).unwrap();
        assert!(
            record.starts_with("a,url,\"http://a.example/?q=1,2\", padded ,"),
            "{record}"
        );
        assert!(
            record.contains(",\"said \"\"hi\"\"\r\nthen left\","),
            "{record}"
        );
    }

    #[test]
    fn nulls_are_empty_cells() {
        let mut row = indicator("a", IndicatorType::Ipv6, "2001:db8::1");
        row.risk_score = None;
        row.confidence = None;
        row.description = None;
        row.tags.clear();
        row.status = Status::Revoked;
        row.tlp = Tlp::Clear;
        let text = render(&[row]);
        let record = text.strip_prefix(HEADER_LINE).unwrap();
        assert!(
            record.starts_with("a,ipv6,2001:db8::1,phishing,,,TLP:CLEAR,,,"),
            "{record}"
        );
        assert!(record.ends_with(",revoked\r\n"), "{record}");
    }

    #[test]
    fn risk_score_shortest_exact_form() {
        for (score, expected) in [
            (87.5, "87.5"),
            (100.0, "100"),
            (0.0, "0"),
            (33.333333333333336, "33.333333333333336"),
        ] {
            let mut row = indicator("a", IndicatorType::Domain, "a.example");
            row.risk_score = Some(score);
            let text = render(&[row]);
            let cell = text
                .strip_prefix(HEADER_LINE)
                .unwrap()
                .split(',')
                .nth(4)
                .unwrap();
            assert_eq!(cell, expected);
            assert_eq!(cell.parse::<f64>().unwrap(), score);
        }
    }

    #[test]
    fn semicolon_in_a_tag_is_written_as_comma() {
        let mut row = indicator("a", IndicatorType::Domain, "a.example");
        row.tags = vec!["one;two".to_owned(), "three,four".to_owned()];
        let text = render(&[row]);
        assert!(text.contains(",\"one,two;three,four\","), "{text}");
    }

    #[test]
    fn values_keep_their_spaces_and_non_ascii_bytes() {
        let value = "  xn--80ak6aa92e.com\t";
        let row = indicator("a", IndicatorType::Domain, value);
        let text = render(&[row]);
        assert!(text.contains(&format!(",{value},")), "{text}");
    }

    #[test]
    fn download_is_the_same_shape_as_a_page() {
        let row = indicator(
            "a",
            IndicatorType::Sha1,
            "da39a3ee5e6b4b0d3255bfef95601890afd80709",
        );
        let snapshot = SnapshotInfo {
            id: "s".to_owned(),
            generated_at: at("2025-04-21T00:00:00Z"),
        };
        let mut writer = PageWriter::new(Format::Csv, Vec::new(), &snapshot, None).unwrap();
        writer.push(&row).unwrap();
        let download = writer.finish().unwrap();
        assert_eq!(String::from_utf8(download).unwrap(), render(&[row]));
    }
}
