//! Numbered physical lines and RFC 4180 records of an import file, read as a stream.

use std::io::{BufRead, Read};

use super::ImportError;

/// Maximum length of a line or quoted record. Longer ones are rejected, so memory stays bounded.
pub const MAX_RECORD_BYTES: usize = 1 << 20;

/// One physical line without its `\n` or `\r\n` terminator.
pub(crate) struct Line {
    /// Line number in the file, from 1.
    pub number: u64,
    /// The line's bytes; empty when the line was too long.
    pub bytes: Vec<u8>,
    /// True when the line exceeded [`MAX_RECORD_BYTES`] and its bytes were dropped.
    pub too_long: bool,
}

/// Reads physical lines, counting them and dropping a UTF-8 byte order mark at the start.
pub(crate) struct LineReader<R> {
    input: R,
    next_number: u64,
}

impl<R: BufRead> LineReader<R> {
    pub fn new(input: R) -> Self {
        Self {
            input,
            next_number: 1,
        }
    }

    /// Returns true when the next line starts with `byte`, without consuming anything.
    pub fn next_starts_with(&mut self, byte: u8) -> Result<bool, std::io::Error> {
        let buffer = self.input.fill_buf()?;
        Ok(buffer.first() == Some(&byte))
    }

    /// Reads the next line, or `None` at the end of the input.
    pub fn next_line(&mut self) -> Result<Option<Line>, std::io::Error> {
        let mut bytes = Vec::new();
        let read = Read::take(&mut self.input, MAX_RECORD_BYTES as u64 + 2)
            .read_until(b'\n', &mut bytes)?;
        if read == 0 {
            return Ok(None);
        }

        let number = self.next_number;
        self.next_number += 1;
        let complete = bytes.last() == Some(&b'\n');
        if !complete && bytes.len() > MAX_RECORD_BYTES {
            self.skip_rest_of_line()?;
            return Ok(Some(Line {
                number,
                bytes: Vec::new(),
                too_long: true,
            }));
        }

        strip_terminator(&mut bytes);
        if number == 1 && bytes.starts_with(b"\xef\xbb\xbf") {
            bytes.drain(..3);
        }
        Ok(Some(Line {
            number,
            bytes,
            too_long: false,
        }))
    }

    fn skip_rest_of_line(&mut self) -> Result<(), std::io::Error> {
        loop {
            let buffer = self.input.fill_buf()?;
            if buffer.is_empty() {
                return Ok(());
            }
            match buffer.iter().position(|&byte| byte == b'\n') {
                Some(end) => {
                    self.input.consume(end + 1);
                    return Ok(());
                }
                None => {
                    let length = buffer.len();
                    self.input.consume(length);
                }
            }
        }
    }
}

fn strip_terminator(bytes: &mut Vec<u8>) {
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
    }
}

/// One CSV record with the number of the line it starts on.
pub(crate) struct CsvRecord {
    /// Line number of the record's first line.
    pub line: u64,
    /// The unquoted fields, or why the record cannot be read.
    pub fields: Result<Vec<String>, String>,
}

/// Splits a stream into RFC 4180 records, so a quoted field may span lines and line numbers stay exact.
///
/// Blank lines are skipped; lines starting with `#` between records are skipped too when
/// comments are enabled.
pub(crate) struct CsvRecords<R> {
    lines: LineReader<R>,
    skip_comments: bool,
    parser: csv_core::Reader,
}

impl<R: BufRead> CsvRecords<R> {
    pub fn new(lines: LineReader<R>, skip_comments: bool) -> Self {
        let parser = csv_core::ReaderBuilder::new()
            .terminator(csv_core::Terminator::Any(b'\n'))
            .build();
        Self {
            lines,
            skip_comments,
            parser,
        }
    }

    /// Reads the next record, or `None` at the end of the input.
    pub fn next_record(&mut self) -> Result<Option<CsvRecord>, ImportError> {
        let first = loop {
            let Some(line) = self.lines.next_line().map_err(ImportError::Read)? else {
                return Ok(None);
            };
            let is_comment = self.skip_comments && line.bytes.first() == Some(&b'#');
            if line.too_long || !(line.bytes.is_empty() || is_comment) {
                break line;
            }
        };

        let start = first.number;
        if first.too_long {
            return Ok(Some(too_long_record(start)));
        }
        let mut text = first.bytes;
        while ends_inside_quotes(&text) {
            let Some(next) = self.lines.next_line().map_err(ImportError::Read)? else {
                return Ok(Some(CsvRecord {
                    line: start,
                    fields: Err("quoted field is not closed before the end of the file".into()),
                }));
            };
            if next.too_long || text.len() + next.bytes.len() > MAX_RECORD_BYTES {
                return Err(ImportError::UnclosedQuote { line: start });
            }
            text.push(b'\n');
            text.extend_from_slice(&next.bytes);
        }

        Ok(Some(CsvRecord {
            line: start,
            fields: self.split_fields(&text),
        }))
    }

    fn split_fields(&mut self, text: &[u8]) -> Result<Vec<String>, String> {
        self.parser.reset();
        let mut output = vec![0u8; text.len() + 1];
        let mut ends = vec![0usize; text.len() + 2];
        let mut input = text;
        let mut written = 0;
        let mut ended = 0;
        loop {
            let (result, read, out, end) =
                self.parser
                    .read_record(input, &mut output[written..], &mut ends[ended..]);
            input = &input[read..];
            written += out;
            ended += end;
            match result {
                csv_core::ReadRecordResult::Record => break,
                // An empty input signals the end of the record to the parser.
                csv_core::ReadRecordResult::InputEmpty => continue,
                csv_core::ReadRecordResult::End => break,
                csv_core::ReadRecordResult::OutputFull
                | csv_core::ReadRecordResult::OutputEndsFull => {
                    return Err("record could not be split into fields".into())
                }
            }
        }

        let mut fields = Vec::with_capacity(ended);
        let mut start = 0;
        for (column, &end) in ends[..ended].iter().enumerate() {
            let field = std::str::from_utf8(&output[start..end])
                .map_err(|_| format!("column {} is not valid UTF-8", column + 1))?;
            fields.push(field.to_owned());
            start = end;
        }
        Ok(fields)
    }
}

fn too_long_record(line: u64) -> CsvRecord {
    CsvRecord {
        line,
        fields: Err(format!("line is longer than {MAX_RECORD_BYTES} bytes")),
    }
}

/// Returns true when `text` ends inside a quoted field, following the quoting rules of `csv_core`.
fn ends_inside_quotes(text: &[u8]) -> bool {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        FieldStart,
        Unquoted,
        Quoted,
        QuoteInQuoted,
    }

    let mut state = State::FieldStart;
    for &byte in text {
        state = match (state, byte) {
            (State::FieldStart, b'"') => State::Quoted,
            (State::FieldStart | State::Unquoted | State::QuoteInQuoted, b',') => State::FieldStart,
            (State::FieldStart | State::Unquoted, b'\n') => State::FieldStart,
            (State::FieldStart | State::Unquoted, _) => State::Unquoted,
            (State::Quoted, b'"') => State::QuoteInQuoted,
            (State::Quoted, _) => State::Quoted,
            (State::QuoteInQuoted, b'"') => State::Quoted,
            (State::QuoteInQuoted, _) => State::Unquoted,
        };
    }
    state == State::Quoted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(text: &str, skip_comments: bool) -> Vec<(u64, Result<Vec<String>, String>)> {
        let mut reader = CsvRecords::new(LineReader::new(text.as_bytes()), skip_comments);
        let mut found = Vec::new();
        while let Some(record) = reader.next_record().unwrap() {
            found.push((record.line, record.fields));
        }
        found
    }

    fn fields(values: &[&str]) -> Result<Vec<String>, String> {
        Ok(values.iter().map(|value| value.to_string()).collect())
    }

    #[test]
    fn line_numbers_count_crlf_blank_and_comment_lines() {
        let text = "\u{feff}a,b\r\n# note\r\n1,2\r\n\r\n3,\"x\r\ny\"\r\n#c\n4,5,6\n\n7";
        let found = records(text, true);
        assert_eq!(
            found,
            vec![
                (1, fields(&["a", "b"])),
                (3, fields(&["1", "2"])),
                (5, fields(&["3", "x\ny"])),
                (8, fields(&["4", "5", "6"])),
                (10, fields(&["7"])),
            ]
        );
    }

    #[test]
    fn comments_are_data_when_not_skipped() {
        let found = records("#a,b\n", false);
        assert_eq!(found, vec![(1, fields(&["#a", "b"]))]);
    }

    #[test]
    fn quotes_escape_and_stray_quotes_stay_literal() {
        let found = records("\"a\"\"b\",c\"d,\"\"\n\"e\"f,g\n", false);
        assert_eq!(
            found,
            vec![
                (1, fields(&["a\"b", "c\"d", ""])),
                (2, fields(&["ef", "g"])),
            ]
        );
    }

    #[test]
    fn unclosed_quote_at_end_is_a_bad_record() {
        let found = records("a,b\n\"open,\nstill open\n", false);
        assert_eq!(found.len(), 2);
        assert_eq!(found[1].0, 2);
        assert!(found[1].1.is_err());
    }

    #[test]
    fn invalid_utf8_names_the_column() {
        let mut reader = CsvRecords::new(LineReader::new(&b"ok,\xff\n"[..]), false);
        let record = reader.next_record().unwrap().unwrap();
        assert_eq!(record.fields, Err("column 2 is not valid UTF-8".to_owned()));
    }

    #[test]
    fn overlong_line_is_skipped_and_reading_goes_on() {
        let mut text = "x".repeat(MAX_RECORD_BYTES + 10);
        text.push_str("\nnext,row\n");
        let found = records(&text, false);
        assert_eq!(found.len(), 2);
        assert!(found[0].1.is_err());
        assert_eq!(found[1], (2, fields(&["next", "row"])));
    }
}
