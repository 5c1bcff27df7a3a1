//! Checks of published files with Python tools: `stix2_validator` and Python's `csv` module.

use std::path::PathBuf;
use std::process::Command;

use partner_feed_testkit::PythonTools;

/// Validates every file with one `stix2_validator --strict` call and fails on any error or
/// warning.
pub fn validate_stix(tools: &PythonTools, files: &[PathBuf]) {
    let output = Command::new(&tools.stix2_validator)
        .arg("--strict")
        .args(files)
        .output()
        .expect("run stix2_validator");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let problems: Vec<&str> = stdout
        .lines()
        .filter(|line| line.contains("[X]") || line.contains("[!]"))
        .collect();
    assert!(
        output.status.success() && problems.is_empty(),
        "stix2_validator --strict rejected the pages ({}):\n{}\n{stderr}",
        output.status,
        problems.join("\n")
    );
    let valid = stdout.lines().filter(|line| line.contains("[+]")).count();
    assert!(
        valid >= files.len(),
        "{valid} of {} files reported valid:\n{stdout}",
        files.len()
    );
}

/// Reads each CSV file with Python's `csv` module and compares its rows with the JSON page's
/// `data`, field by field.
pub fn compare_csv_with_json(tools: &PythonTools, pairs: &[(PathBuf, PathBuf)]) {
    let mut command = Command::new(&tools.python);
    command.arg("-c").arg(COMPARE_SCRIPT);
    for (csv, json) in pairs {
        command.arg(csv).arg(json);
    }
    let output = command.output().expect("run python");
    assert!(
        output.status.success(),
        "CSV pages differ from JSON pages:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Arguments: CSV and JSON file paths, alternating. Prints each difference and exits 1 if any.
const COMPARE_SCRIPT: &str = r#"
import csv, json, sys

COLUMNS = ["id", "type", "value", "category", "risk_score", "confidence", "tlp", "tags",
           "description", "first_seen", "last_seen", "updated_at", "status"]
JSON_KEYS = {"risk_score": "riskScore", "first_seen": "firstSeen", "last_seen": "lastSeen",
             "updated_at": "updatedAt"}

def expected_cell(column, value):
    if value is None:
        return ""
    if column == "tags":
        return ";".join(tag.replace(";", ",") for tag in value)
    return value

def same(column, cell, value):
    expected = expected_cell(column, value)
    if column == "risk_score" and cell != "" and value is not None:
        return float(cell) == float(value)
    if column == "confidence" and cell != "" and value is not None:
        return int(cell) == int(value)
    return cell == expected

problems = []
arguments = sys.argv[1:]
for csv_path, json_path in zip(arguments[0::2], arguments[1::2]):
    with open(csv_path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle, strict=True))
    with open(json_path, encoding="utf-8") as handle:
        records = json.load(handle)["data"]
    if rows[0] != COLUMNS:
        problems.append(f"{csv_path}: header {rows[0]}")
    if len(rows) - 1 != len(records):
        problems.append(f"{csv_path}: {len(rows) - 1} rows, JSON has {len(records)}")
    for row, record in zip(rows[1:], records):
        for column, cell in zip(COLUMNS, row):
            value = record[JSON_KEYS.get(column, column)]
            if not same(column, cell, value):
                problems.append(f"{csv_path}: {record['id']} {column}: {cell!r} != {value!r}")
for problem in problems[:50]:
    print(problem)
sys.exit(1 if problems else 0)
"#;
