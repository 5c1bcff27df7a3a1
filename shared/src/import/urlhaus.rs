//! Reader of abuse.ch URLhaus CSV dumps (`id,dateadded,url,url_status,last_online,threat,tags,urlhaus_link,reporter`).
//!
//! A dump starts either with a plain header line or with `#` comment lines, one of which contains
//! the header (`# id,dateadded,…`); LF and CRLF line ends are both read. Each row becomes a
//! `url` indicator: category from `threat`, tags from the comma-separated `tags` (`None` means
//! no tags), `first_seen` from `dateadded`, `last_seen` from `last_online` or else `dateadded`,
//! `TLP:CLEAR`, status `active`, no risk score, confidence or description. URLhaus dates are UTC.
//!
//! `url_status` is not imported: it tells whether the URL served its payload at URLhaus's last
//! check, not whether the listing was withdrawn, so an `offline` row is still an active
//! indicator and its `last_seen` says how fresh it is. The `reporter` column is never read,
//! because the feed contains no data about reporters or victims.

use std::io::BufRead;

use super::lines::{CsvRecords, LineReader};
use super::record::{self, IndicatorRecord};
use super::{ImportError, ParsedRow};
use crate::indicator::{IndicatorType, Status};
use crate::tlp::Tlp;

/// Columns of a URLhaus dump that the importer reads.
const USED_COLUMNS: [&str; 5] = ["dateadded", "url", "last_online", "threat", "tags"];

/// Every column of a URLhaus dump, in the dump's order.
const DUMP_COLUMNS: &str =
    "id,dateadded,url,url_status,last_online,threat,tags,urlhaus_link,reporter";

/// Reads rows of a URLhaus dump after finding its header.
pub(crate) struct UrlhausReader<R> {
    records: CsvRecords<R>,
    /// Position of each of [`USED_COLUMNS`] in the dump's rows.
    positions: [usize; 5],
    width: usize,
}

impl<R: BufRead> UrlhausReader<R> {
    pub fn new(input: R) -> Result<Self, ImportError> {
        let mut lines = LineReader::new(input);
        let comment_header = read_comment_preamble(&mut lines)?;
        let mut records = CsvRecords::new(lines, true);
        let names = match comment_header {
            Some(names) => names,
            None => {
                let header = records
                    .next_record()?
                    .ok_or_else(|| header_error("the file has no header".to_owned()))?;
                header
                    .fields
                    .map_err(|reason| header_error(format!("line {}: {reason}", header.line)))?
            }
        };
        let positions = column_positions(&names)?;
        Ok(Self {
            records,
            positions,
            width: names.len(),
        })
    }

    /// Reads the next row, or `None` at the end of the file.
    pub fn next_row(&mut self) -> Result<Option<ParsedRow>, ImportError> {
        let Some(record) = self.records.next_record()? else {
            return Ok(None);
        };
        let result = record.fields.and_then(|fields| self.to_record(fields));
        Ok(Some(ParsedRow {
            line: record.line,
            result,
        }))
    }

    fn to_record(&self, fields: Vec<String>) -> Result<IndicatorRecord, String> {
        if fields.len() != self.width {
            return Err(format!(
                "expected {} columns, found {}",
                self.width,
                fields.len()
            ));
        }
        let field = |column: usize| fields[self.positions[column]].as_str();

        let first_seen = record::required_timestamp("dateadded", field(0))?;
        let value = record::value(field(1).to_owned())?;
        let last_online = field(2);
        let last_seen = if last_online.is_empty() || last_online == "None" {
            first_seen
        } else {
            record::required_timestamp("last_online", last_online)?
        };
        let category = record::category(field(3).trim().to_owned())
            .map_err(|_| "threat is empty".to_owned())?;
        let tags = record::tags(split_tags(field(4)))?;

        Ok(IndicatorRecord {
            id: None,
            indicator_type: IndicatorType::Url,
            value,
            category,
            risk_score: None,
            confidence: None,
            tlp: Tlp::Clear,
            tags,
            description: None,
            first_seen,
            last_seen,
            status: Status::Active,
        })
    }
}

fn split_tags(text: &str) -> Vec<String> {
    if text == "None" {
        return Vec::new();
    }
    text.split(',').map(|tag| tag.trim().to_owned()).collect()
}

/// Skips the leading `#` lines and returns the column names of the one that contains the header.
fn read_comment_preamble<R: BufRead>(
    lines: &mut LineReader<R>,
) -> Result<Option<Vec<String>>, ImportError> {
    let mut header = None;
    while lines.next_starts_with(b'#').map_err(ImportError::Read)? {
        let Some(line) = lines.next_line().map_err(ImportError::Read)? else {
            break;
        };
        let text = String::from_utf8_lossy(&line.bytes);
        let content = text.trim_start_matches('#').trim();
        if content.starts_with("id,") || content.starts_with("\"id\",") {
            header = Some(
                content
                    .split(',')
                    .map(|name| name.trim().trim_matches('"').to_owned())
                    .collect(),
            );
        }
    }
    Ok(header)
}

fn column_positions(names: &[String]) -> Result<[usize; 5], ImportError> {
    let mut positions = [0; 5];
    for (slot, column) in USED_COLUMNS.iter().enumerate() {
        positions[slot] = names
            .iter()
            .position(|name| name == column)
            .ok_or_else(|| header_error(format!("column {column:?} is missing")))?;
    }
    Ok(positions)
}

fn header_error(reason: String) -> ImportError {
    ImportError::Header {
        reason: format!(
            "{reason}; a URLhaus dump has the header {DUMP_COLUMNS}, \
             on its own line or in a '#' comment line"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(text: &str) -> Vec<ParsedRow> {
        let mut reader = UrlhausReader::new(text.as_bytes()).unwrap();
        let mut found = Vec::new();
        while let Some(row) = reader.next_row().unwrap() {
            found.push(row);
        }
        found
    }

    const ROW: &str =
        "\"3520660\",\"2025-04-21 12:15:06\",\"http://59.94.69.110:47724/bin.sh\",\"online\",\
        \"2025-04-21 12:30:43\",\"malware_download\",\"32-bit,elf,mips,Mozi\",\
        \"https://urlhaus.abuse.ch/url/3520660/\",\"redacted\"";

    #[test]
    fn row_maps_to_a_clear_active_url() {
        let found = rows(&format!("{DUMP_COLUMNS}\n{ROW}\n"));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].line, 2);
        let record = found[0].result.as_ref().unwrap();
        assert_eq!(record.indicator_type, IndicatorType::Url);
        assert_eq!(record.value, "http://59.94.69.110:47724/bin.sh");
        assert_eq!(record.category, "malware_download");
        assert_eq!(record.tags, ["32-bit", "elf", "mips", "Mozi"]);
        assert_eq!(record.tlp, Tlp::Clear);
        assert_eq!(record.first_seen.to_rfc3339(), "2025-04-21T12:15:06+00:00");
        assert_eq!(record.last_seen.to_rfc3339(), "2025-04-21T12:30:43+00:00");
        assert_eq!(record.description, None);
    }

    #[test]
    fn header_inside_comments_with_crlf_is_found() {
        let text = format!(
            "################\r\n# URLhaus dump\r\n#\r\n# {DUMP_COLUMNS}\r\n{ROW}\r\n{ROW}\r\n#### END\r\n"
        );
        let found = rows(&text);
        assert_eq!(found.iter().map(|row| row.line).collect::<Vec<_>>(), [5, 6]);
        assert!(found.iter().all(|row| row.result.is_ok()));
    }

    #[test]
    fn none_tags_and_missing_last_online_fall_back() {
        let row = ROW
            .replace("\"2025-04-21 12:30:43\"", "\"None\"")
            .replace("32-bit,elf,mips,Mozi", "None");
        let found = rows(&format!("{DUMP_COLUMNS}\n{row}\n"));
        let record = found[0].result.as_ref().unwrap();
        assert!(record.tags.is_empty());
        assert_eq!(record.last_seen, record.first_seen);
    }

    #[test]
    fn missing_header_is_an_error() {
        let error = UrlhausReader::new(&b"# just a comment\n"[..])
            .err()
            .unwrap();
        assert!(error.to_string().contains("no header"), "{error}");
    }
}
