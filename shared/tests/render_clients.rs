//! Renders hostile and real indicators into pages and downloads, then reads them with
//! the clients partners use: stix2-validator, the stix2 library and Python's csv module.
//!
//! The Python tools come from the virtualenv in `PARTNER_FEED_PYENV`, by default
//! `target/pyenv` of the workspace. Without them the tests print why they skipped,
//! unless `CI=true`, where they fail.

use std::env;
use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use chrono::{DateTime, NaiveDateTime, Utc};
use flate2::read::GzDecoder;
use partner_feed_shared::render::{render_page, PageWriter, Pagination, SnapshotInfo};
use partner_feed_shared::snapshot::Format;
use partner_feed_shared::{Indicator, IndicatorType, Status, Tlp};

/// Rows per rendered page: small enough that the fixtures span several pages.
const PAGE_SIZE: usize = 100;

/// URLhaus rows read from the real dump.
const URLHAUS_ROWS: usize = 300;

/// ScamSniffer rows (wallets and domains) read from the real dump.
const SCAMSNIFFER_ROWS: usize = 200;

/// Checks run by Python on the rendered files; the first argument picks the check.
const CHECK_SCRIPT: &str = r#"
import csv, json, re, sys
from pathlib import Path

import stix2

EXTENSION = "extension-definition--5dce74d1-b7a0-4c92-80d0-8c69fd222ea7"
MARKINGS = {
    "TLP:CLEAR": "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
    "TLP:GREEN": "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
    "TLP:AMBER": "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
    "TLP:AMBER+STRICT": "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
}
OBJECT_PATHS = {
    "url": "url:value",
    "domain": "domain-name:value",
    "ipv4": "ipv4-addr:value",
    "ipv6": "ipv6-addr:value",
    "email": "email-addr:value",
    "phone": "phone-number:value",
    "crypto_wallet": "cryptocurrency-wallet:value",
    "md5": "file:hashes.MD5",
    "sha1": "file:hashes.'SHA-1'",
    "sha256": "file:hashes.'SHA-256'",
}
HEADER = ["id", "type", "value", "category", "risk_score", "confidence", "tlp", "tags",
          "description", "first_seen", "last_seen", "updated_at", "status"]


def split_pattern(pattern):
    match = re.fullmatch(r"\[(\S+) = '(.*)'\]", pattern, re.S)
    assert match, f"unexpected pattern shape: {pattern!r}"
    literal, i, body = [], 0, match.group(2)
    while i < len(body):
        if body[i] == "\\":
            assert body[i + 1] in "\\'", f"bad escape in {pattern!r}"
            literal.append(body[i + 1])
            i += 2
        else:
            assert body[i] != "'", f"unescaped quote in {pattern!r}"
            literal.append(body[i])
            i += 1
    return match.group(1), "".join(literal)


def check_bundle(stix_path, json_path):
    bundle = stix2.parse(stix_path.read_text(encoding="utf-8"), allow_custom=False)
    records = json.loads(json_path.read_text(encoding="utf-8"))["data"]
    indicators = [o for o in bundle.objects if o.type == "indicator"]
    assert len(indicators) == len(records), f"{stix_path}: {len(indicators)} != {len(records)}"
    used = set()
    for indicator, record in zip(indicators, records):
        where = f"{stix_path.name} {record['id']}"
        object_path, literal = split_pattern(indicator.pattern)
        assert object_path == OBJECT_PATHS[record["type"]], where
        assert literal == record["value"], f"{where}: {literal!r} != {record['value']!r}"
        assert indicator.get("revoked", False) == (record["status"] == "revoked"), where
        assert indicator.get("confidence") == record["confidence"], where
        assert list(indicator.object_marking_refs) == [MARKINGS[record["tlp"]]], where
        used.add(MARKINGS[record["tlp"]])
        extension = indicator.extensions[EXTENSION]
        assert extension["category"] == record["category"], where
        assert extension.get("risk_score") == record["riskScore"], where
        assert list(extension.get("tags", [])) == record["tags"], where
        if record["description"] is not None:
            assert indicator.description == record["description"], where
    markings = {o.id for o in bundle.objects if o.type == "marking-definition"}
    assert markings == used, f"{stix_path}: markings {markings} != used {used}"
    return len(indicators)


def check_csv(csv_path, json_path):
    records = json.loads(json_path.read_text(encoding="utf-8"))["data"]
    with csv_path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle, strict=True))
    assert rows[0] == HEADER, rows[0]
    assert len(rows) - 1 == len(records), f"{csv_path}: {len(rows) - 1} != {len(records)}"
    for row, record in zip(rows[1:], records):
        where = f"{csv_path.name} {record['id']}"
        cells = dict(zip(HEADER, row))
        assert len(row) == len(HEADER), where
        for field in ["id", "type", "value", "category", "tlp", "status"]:
            assert cells[field] == record[field], f"{where} {field}: {cells[field]!r}"
        for field, key in [("first_seen", "firstSeen"), ("last_seen", "lastSeen"),
                           ("updated_at", "updatedAt")]:
            assert cells[field] == record[key], f"{where} {field}"
        score = record["riskScore"]
        assert (cells["risk_score"] == "") == (score is None), f"{where} risk_score"
        if score is not None:
            assert float(cells["risk_score"]) == score, f"{where} risk_score"
        confidence = record["confidence"]
        assert cells["confidence"] == ("" if confidence is None else str(confidence)), where
        tags = ";".join(tag.replace(";", ",") for tag in record["tags"])
        assert cells["tags"] == tags, f"{where} tags: {cells['tags']!r} != {tags!r}"
        assert cells["description"] == (record["description"] or ""), f"{where} description"
    return len(records)


mode, folder = sys.argv[1], Path(sys.argv[2])
checked = 0
for json_path in sorted(folder.glob("*.data.json")):
    stem = json_path.name.removesuffix(".data.json")
    if mode == "stix":
        checked += check_bundle(folder / f"{stem}.stix.json", json_path)
    else:
        checked += check_csv(folder / f"{stem}.csv", json_path)
print(f"checked {checked} rows")
"#;

/// Python interpreter and validator of the virtualenv the tests use.
struct PythonTools {
    python: PathBuf,
    validator: PathBuf,
}

/// Returns the Python tools, or `None` after printing why the test is skipped.
///
/// Panics when the tools are missing and `CI` is `true`.
fn python_tools() -> Option<PythonTools> {
    let venv = env::var_os("PARTNER_FEED_PYENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/pyenv"));
    let tools = PythonTools {
        python: venv.join("bin/python"),
        validator: venv.join("bin/stix2_validator"),
    };
    if tools.python.is_file() && tools.validator.is_file() {
        return Some(tools);
    }

    let reason = format!(
        "no bin/python and bin/stix2_validator in {} (set PARTNER_FEED_PYENV to a virtualenv with stix2 and stix2-validator)",
        venv.display()
    );
    if env::var("CI").as_deref() == Ok("true") {
        panic!("Python tools missing on CI: {reason}");
    }
    eprintln!("skipped: STIX and CSV client checks need Python tools: {reason}");
    None
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the shared crate sits inside the workspace")
        .to_path_buf()
}

fn data_file(name: &str) -> PathBuf {
    workspace_root().join("../shared/data").join(name)
}

fn at(text: &str) -> DateTime<Utc> {
    text.parse().expect("fixture timestamp")
}

/// Returns an indicator with ordinary values, for fixtures to change one thing at a time.
fn base(id: &str, indicator_type: IndicatorType, value: &str) -> Indicator {
    Indicator {
        id: id.to_owned(),
        indicator_type,
        value: value.to_owned(),
        category: "phishing".to_owned(),
        risk_score: Some(87.5),
        confidence: Some(80),
        tlp: Tlp::Amber,
        tags: vec!["bank".to_owned()],
        description: Some("Reported by a partner bank".to_owned()),
        first_seen: at("2025-04-01T08:00:00Z"),
        last_seen: at("2025-04-20T09:30:00.250Z"),
        created_at: at("2025-04-01T08:05:00Z"),
        updated_at: at("2025-04-21T12:35:06.123456Z"),
        status: Status::Active,
    }
}

/// Indicators built to break quoting and escaping in each format.
fn hostile_indicators() -> Vec<Indicator> {
    let long_url = format!("https://long.example/{}?q=1", "a/b%27c".repeat(300));
    let mut rows = vec![
        base(
            "0b7e2f34-5a1c-4d8e-9f60-7a2b3c4d5e6f",
            IndicatorType::Url,
            "http://quote.example/it's/\"x\"",
        ),
        base(
            "1c8f3045-6b2d-4e9f-8071-8b3c4d5e6f70",
            IndicatorType::Url,
            "http://backslash.example/a\\b\\\\c\\",
        ),
        base(
            "2d904156-7c3e-4fa0-9182-9c4d5e6f7081",
            IndicatorType::Url,
            "http://end.example/x')",
        ),
        base(
            "3ea15267-8d4f-40b1-a293-ad5e6f708192",
            IndicatorType::Url,
            "http://break.example/a\r\nb\rc\nd",
        ),
        base(
            "4fb26378-9e50-41c2-b3a4-be6f708192a3",
            IndicatorType::Url,
            &long_url,
        ),
        base(
            "50c37489-af61-42d3-84b5-cf708192a3b4",
            IndicatorType::Domain,
            "xn--80ak6aa92e.com",
        ),
        base(
            "61d4859a-b072-43e4-95c6-d08192a3b4c5",
            IndicatorType::Domain,
            "пример.испытание",
        ),
        base("legacy-ipv4-1", IndicatorType::Ipv4, "198.51.100.7"),
        base(
            "72e596ab-c183-44f5-a6d7-e192a3b4c5d6",
            IndicatorType::Ipv6,
            "2001:db8::dead:beef",
        ),
        base(
            "83f6a7bc-d294-4506-b7e8-f2a3b4c5d6e7",
            IndicatorType::Email,
            "\"o'brien\\\"\"@example.com",
        ),
        base(
            "9407b8cd-e3a5-4617-88f9-03b4c5d6e7f8",
            IndicatorType::Phone,
            "+44 20 7946 0958",
        ),
        base(
            "a518c9de-f4b6-4728-9a0a-14c5d6e7f809",
            IndicatorType::CryptoWallet,
            "bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh",
        ),
        base(
            "b629daef-05c7-4839-ab1b-25d6e7f8091a",
            IndicatorType::Md5,
            "d41d8cd98f00b204e9800998ecf8427e",
        ),
        base(
            "c73aebf0-16d8-494a-bc2c-36e7f8091a2b",
            IndicatorType::Sha1,
            "da39a3ee5e6b4b0d3255bfef95601890afd80709",
        ),
        base(
            "d84bfc01-27e9-4a5b-8d3d-47f8091a2b3c",
            IndicatorType::Sha256,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ),
        base(
            "ea5c0d12-38fa-4b6c-9e4e-58091a2b3c4d",
            IndicatorType::Domain,
            "'",
        ),
        base(
            "fb6d1e23-490b-4c7d-8f5f-691a2b3c4d5e",
            IndicatorType::Email,
            "\\",
        ),
        // A UUIDv1 id: valid UUID, not version 4, so the STIX id is derived.
        base(
            "c232ab00-9414-11ec-b3c8-9f6bdeced846",
            IndicatorType::Url,
            "  http://spaces.example/  ",
        ),
    ];

    let tlps = [Tlp::Clear, Tlp::Green, Tlp::Amber, Tlp::AmberStrict];
    for (index, row) in rows.iter_mut().enumerate() {
        row.tlp = tlps[index % tlps.len()];
    }

    rows[0].tags = vec![
        "comma,tag".to_owned(),
        "semi;colon".to_owned(),
        "quote\"tag".to_owned(),
        "back\\slash".to_owned(),
    ];
    rows[1].description =
        Some("line one\r\nline two, with \"quotes\" and 'apostrophes'".to_owned());
    rows[2].risk_score = None;
    rows[2].confidence = None;
    rows[3].status = Status::Revoked;
    rows[3].description = None;
    rows[4].tags.clear();
    rows[5].risk_score = Some(100.0);
    rows[6].risk_score = Some(0.0);
    rows[6].category = "investment_scam".to_owned();
    rows[7].risk_score = Some(33.333333333333336);
    rows[7].status = Status::Revoked;
    rows[8].description = Some("ends with a backslash \\".to_owned());
    rows[9].tags = vec!["ünïcødé".to_owned(), "日本語".to_owned()];
    rows[10].description = Some(String::new());
    rows[11].category = "crypto_drainer".to_owned();
    rows[12].confidence = Some(0);
    rows[13].confidence = Some(100);
    rows[14].updated_at = rows[14].created_at;
    rows[15].description = Some("emoji \u{1f3e6} and a line separator \u{2028} inside".to_owned());
    rows[16].tags = vec![String::new(), "\ttabbed ".to_owned()];
    rows
}

/// Reads the first rows of the URLhaus dump (`id,dateadded,url,url_status,last_online,threat,tags,…`).
fn urlhaus_indicators(count: usize) -> Vec<Indicator> {
    let mut reader = csv::Reader::from_path(data_file("urlhaus-online-2025-04-21.csv"))
        .expect("the URLhaus dump is readable");
    let tlps = [Tlp::Clear, Tlp::Green, Tlp::Amber, Tlp::AmberStrict];
    reader
        .records()
        .take(count)
        .enumerate()
        .map(|(index, record)| {
            let record = record.expect("a URLhaus record");
            let added = urlhaus_time(&record[1]);
            let last_online = if record[4].is_empty() {
                added
            } else {
                urlhaus_time(&record[4])
            };
            Indicator {
                id: format!("urlhaus-{}", &record[0]),
                indicator_type: IndicatorType::Url,
                value: record[2].to_owned(),
                category: record[5].to_owned(),
                // Scores are made up, with a fixed pattern: the dump has none.
                risk_score: (index % 5 != 0)
                    .then_some((index % 101) as f64 - 0.5 * (index % 2) as f64),
                confidence: (index % 7 != 0).then_some((index % 101) as i32),
                tlp: tlps[index % tlps.len()],
                tags: record[6]
                    .split(',')
                    .filter(|tag| !tag.is_empty())
                    .map(str::to_owned)
                    .collect(),
                description: None,
                first_seen: added,
                last_seen: last_online,
                created_at: added,
                updated_at: last_online,
                status: if index % 11 == 0 {
                    Status::Revoked
                } else {
                    Status::Active
                },
            }
        })
        .collect()
}

fn urlhaus_time(text: &str) -> DateTime<Utc> {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
        .expect("a URLhaus timestamp")
        .and_utc()
}

/// Reads the first rows of the ScamSniffer dump, which is in the feed's own CSV shape.
fn scamsniffer_indicators(count: usize) -> Vec<Indicator> {
    let file = File::open(data_file("scamsniffer-2022-05-31_2026-08-15.csv.gz"))
        .expect("the ScamSniffer dump is readable");
    let mut reader = csv::Reader::from_reader(GzDecoder::new(file));
    reader
        .records()
        .take(count)
        .enumerate()
        .map(|(index, record)| {
            let record = record.expect("a ScamSniffer record");
            Indicator {
                id: format!("scamsniffer-{index}"),
                indicator_type: record[1].parse().expect("a known indicator type"),
                value: record[2].to_owned(),
                category: record[3].to_owned(),
                risk_score: None,
                confidence: None,
                tlp: record[6].parse().expect("a TLP level"),
                tags: vec![record[7].to_owned()],
                description: None,
                first_seen: at(&record[9]),
                last_seen: at(&record[10]),
                created_at: at(&record[9]),
                updated_at: at(&record[11]),
                status: record[12].parse().expect("a status"),
            }
        })
        .collect()
}

fn all_fixtures() -> Vec<Indicator> {
    let mut rows = hostile_indicators();
    rows.extend(urlhaus_indicators(URLHAUS_ROWS));
    rows.extend(scamsniffer_indicators(SCAMSNIFFER_ROWS));
    rows
}

fn snapshot() -> SnapshotInfo {
    SnapshotInfo {
        id: "20250421T123600000Z-0a1b2c3d".to_owned(),
        generated_at: at("2025-04-21T12:36:00Z"),
    }
}

/// Writes every page of the fixtures, and a download, in all three formats to `folder`.
/// Each document is named `<stem>.data.json`, `<stem>.csv` and `<stem>.stix.json`.
fn render_fixtures(folder: &Path) -> usize {
    let rows = all_fixtures();
    let snapshot = snapshot();
    let total_items = rows.len() as u64;

    for (index, chunk) in rows.chunks(PAGE_SIZE).enumerate() {
        let page = index as u64 + 1;
        let pagination = Pagination {
            page,
            page_size: PAGE_SIZE as u64,
            total_items,
            self_link: format!("/feeds/indicators?page={page}&pageSize={PAGE_SIZE}"),
            next_link: (page * (PAGE_SIZE as u64) < total_items)
                .then(|| format!("/feeds/indicators?page={}&pageSize={PAGE_SIZE}", page + 1)),
        };
        for format in Format::ALL {
            let bytes = render_page(format, chunk, &snapshot, &pagination);
            fs::write(
                folder.join(file_name(&format!("page-{page}"), format)),
                bytes,
            )
            .expect("writing a page");
        }
    }

    for format in Format::ALL {
        let path = folder.join(file_name("download", format));
        let file = std::io::BufWriter::new(File::create(&path).expect("creating a download"));
        let mut writer =
            PageWriter::new(format, file, &snapshot, None).expect("starting a download");
        for row in &rows {
            writer.push(row).expect("writing a download row");
        }
        writer.finish().expect("finishing a download");
    }
    rows.len()
}

fn file_name(stem: &str, format: Format) -> String {
    match format {
        Format::Json => format!("{stem}.data.json"),
        Format::Csv => format!("{stem}.csv"),
        Format::Stix => format!("{stem}.stix.json"),
    }
}

fn stix_files(folder: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(folder)
        .expect("listing the rendered files")
        .map(|entry| entry.expect("a rendered file").path())
        .filter(|path| path.to_string_lossy().ends_with(".stix.json"))
        .collect();
    files.sort();
    files
}

fn run_check_script(tools: &PythonTools, mode: &str, folder: &Path) -> Output {
    let script = folder.join("check_rendered.py");
    fs::write(&script, CHECK_SCRIPT).expect("writing the check script");
    Command::new(&tools.python)
        .arg(&script)
        .arg(mode)
        .arg(folder)
        .output()
        .expect("running Python")
}

fn describe(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn fixtures_cover_types_tlps_statuses() {
    let rows = all_fixtures();
    for indicator_type in IndicatorType::ALL {
        assert!(
            rows.iter().any(|row| row.indicator_type == indicator_type),
            "no {indicator_type} fixture"
        );
    }
    for tlp in [Tlp::Clear, Tlp::Green, Tlp::Amber, Tlp::AmberStrict] {
        assert!(rows.iter().any(|row| row.tlp == tlp), "no {tlp} fixture");
    }
    assert!(rows.iter().any(|row| row.status == Status::Revoked));
    assert!(rows.iter().any(|row| row.risk_score.is_none()));
    assert!(rows.iter().any(|row| row.value.len() > 2048));
    assert_eq!(
        rows.len(),
        hostile_indicators().len() + URLHAUS_ROWS + SCAMSNIFFER_ROWS
    );
}

#[test]
fn bundles_pass_strict_validator() {
    let Some(tools) = python_tools() else { return };
    let folder = tempfile::tempdir().expect("a temporary folder");
    render_fixtures(folder.path());
    let bundles = stix_files(folder.path());
    assert!(
        bundles.len() >= 3,
        "only {} bundles rendered",
        bundles.len()
    );

    let output = Command::new(&tools.validator)
        .arg("--strict")
        .args(&bundles)
        .output()
        .expect("running stix2_validator");

    let report = describe(&output);
    assert!(output.status.success(), "{report}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!stdout.contains("Warning"), "{report}");
    assert!(!stdout.contains("Error"), "{report}");
    assert_eq!(
        stdout.matches("STIX JSON: Valid").count(),
        bundles.len(),
        "{report}"
    );
}

#[test]
fn stix2_reads_bundles_matching_json() {
    let Some(tools) = python_tools() else { return };
    let folder = tempfile::tempdir().expect("a temporary folder");
    let rows = render_fixtures(folder.path());

    let output = run_check_script(&tools, "stix", folder.path());

    assert!(output.status.success(), "{}", describe(&output));
    // Every row is checked twice: once on its page and once in the download.
    let expected = format!("checked {} rows", 2 * rows);
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        expected,
        "{}",
        describe(&output)
    );
}

#[test]
fn python_csv_rows_match_json() {
    let Some(tools) = python_tools() else { return };
    let folder = tempfile::tempdir().expect("a temporary folder");
    let rows = render_fixtures(folder.path());

    let output = run_check_script(&tools, "csv", folder.path());

    assert!(output.status.success(), "{}", describe(&output));
    let expected = format!("checked {} rows", 2 * rows);
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        expected,
        "{}",
        describe(&output)
    );
}

#[test]
fn csv_lines_end_in_crlf() {
    let folder = tempfile::tempdir().expect("a temporary folder");
    render_fixtures(folder.path());
    let file = File::open(folder.path().join("page-1.csv")).expect("page 1 in CSV");

    let mut reader = BufReader::new(file);
    let mut header = String::new();
    reader.read_line(&mut header).expect("reading the header");

    assert!(header.ends_with("\r\n"), "{header:?}");
    let bytes = fs::read(folder.path().join("download.csv")).expect("the CSV download");
    assert!(bytes.ends_with(b"\r\n"));
}
