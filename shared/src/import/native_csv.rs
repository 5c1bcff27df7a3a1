//! Reader of the feed's own CSV shape, the same columns the publisher writes.
//!
//! Columns are matched by header name. An empty `id` gets a new UUIDv4, an empty `status` means
//! `active`, `tags` are split on `;`, and an empty cell is null. The `updated_at` column must be a
//! valid timestamp but is not stored: the table's `updated_at` records when this database last
//! changed the row, which is what `since` consumers rely on.

use std::io::BufRead;

use super::lines::{CsvRecords, LineReader};
use super::record::{self, IndicatorRecord};
use super::{ImportError, ParsedRow};

/// Header of the feed's CSV, in the order the publisher writes it.
pub const CSV_COLUMNS: [&str; 13] = [
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

/// Reads rows of the feed's CSV after checking its header.
pub(crate) struct NativeCsvReader<R> {
    records: CsvRecords<R>,
    /// Position of each of [`CSV_COLUMNS`] in the file's rows.
    positions: [usize; 13],
    width: usize,
}

impl<R: BufRead> NativeCsvReader<R> {
    pub fn new(input: R) -> Result<Self, ImportError> {
        let mut records = CsvRecords::new(LineReader::new(input), false);
        let header = records
            .next_record()?
            .ok_or_else(|| header_error("the file is empty".to_owned()))?;
        let names = header
            .fields
            .map_err(|reason| header_error(format!("line {}: {reason}", header.line)))?;
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
        let mut fields: Vec<Option<String>> = fields.into_iter().map(Some).collect();
        let mut take = |column: usize| fields[self.positions[column]].take().unwrap_or_default();

        let id = record::optional_id(&take(0))?;
        let indicator_type = record::indicator_type(&take(1))?;
        let value = record::value(take(2))?;
        let category = record::category(take(3))?;
        let risk_score = record::risk_score_text(&take(4))?;
        let confidence = record::confidence_text(&take(5))?;
        let tlp = record::tlp(&take(6))?;
        let tags = record::tags(take(7).split(';').map(str::to_owned))?;
        let description = record::description(Some(take(8)));
        let first_seen = record::required_timestamp("first_seen", &take(9))?;
        let last_seen = optional_last_seen(&take(10), first_seen)?;
        let updated_at = take(11);
        if !updated_at.is_empty() {
            record::required_timestamp("updated_at", &updated_at)?;
        }
        let status = record::status(&take(12))?;

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
}

/// Reads `last_seen`, which defaults to `first_seen` when empty.
fn optional_last_seen(
    text: &str,
    first_seen: chrono::DateTime<chrono::Utc>,
) -> Result<chrono::DateTime<chrono::Utc>, String> {
    if text.is_empty() {
        return Ok(first_seen);
    }
    record::required_timestamp("last_seen", text)
}

fn column_positions(names: &[String]) -> Result<[usize; 13], ImportError> {
    let mut positions = [usize::MAX; 13];
    for (position, name) in names.iter().enumerate() {
        let Some(column) = CSV_COLUMNS.iter().position(|known| known == name) else {
            return Err(header_error(format!("unknown column {name:?}")));
        };
        if positions[column] != usize::MAX {
            return Err(header_error(format!("column {name:?} appears twice")));
        }
        positions[column] = position;
    }
    if let Some(missing) = positions.iter().position(|&found| found == usize::MAX) {
        return Err(header_error(format!(
            "column {:?} is missing",
            CSV_COLUMNS[missing]
        )));
    }
    Ok(positions)
}

fn header_error(reason: String) -> ImportError {
    ImportError::Header {
        reason: format!(
            "{reason}; the feed's CSV starts with the header {} \
             (use --format urlhaus for URLhaus dumps, --format ndjson for JSON lines)",
            CSV_COLUMNS.join(",")
        ),
    }
}
