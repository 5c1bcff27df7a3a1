//! End-to-end tests of `partner-feed import`: counts, exit codes, rejected rows, formats and upserts.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use chrono::{DateTime, Utc};
use partner_feed_shared::db::{Database, IndicatorRow, INDICATOR_COLUMNS};
use partner_feed_shared::{on_pool, Indicator};

/// A temporary working folder and database, and the `partner-feed` binary run inside them.
struct FeedCli {
    dir: tempfile::TempDir,
    database_url: String,
}

impl FeedCli {
    /// Uses a fresh SQLite file in a temporary folder.
    fn sqlite() -> FeedCli {
        let dir = tempfile::tempdir().unwrap();
        let database_url = format!("sqlite://{}", dir.path().join("feed.db").display());
        FeedCli { dir, database_url }
    }

    /// Uses a fresh database on the test PostgreSQL server, or `None` when it is not installed.
    fn postgres() -> Option<FeedCli> {
        let server = partner_feed_testkit::postgres()?;
        Some(FeedCli {
            dir: tempfile::tempdir().unwrap(),
            database_url: server.create_database(),
        })
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_partner-feed"));
        for (name, _) in std::env::vars() {
            if name.starts_with("I4G_") {
                command.env_remove(name);
            }
        }
        command
            .args(args)
            .current_dir(self.dir.path())
            .env("I4G_DATABASE__URL", &self.database_url)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    }

    fn import(&self, file: &Path, format: &str) -> Output {
        self.run(&["import", file.to_str().unwrap(), "--format", format])
    }

    fn write(&self, name: &str, content: &[u8]) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        path
    }

    async fn indicators(&self) -> Vec<Indicator> {
        let db = Database::connect(&self.database_url).await.unwrap();
        let sql =
            format!("SELECT {INDICATOR_COLUMNS} FROM indicators ORDER BY indicator_type, value");
        let rows: Vec<IndicatorRow> =
            on_pool!(&db, pool => sqlx::query_as(&sql).fetch_all(pool).await).unwrap();
        db.close().await;
        rows.into_iter()
            .map(|row| Indicator::try_from(row).unwrap())
            .collect()
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn counts(inserted: u64, updated: u64, unchanged: u64, rejected: u64) -> String {
    format!("inserted {inserted}, updated {updated}, unchanged {unchanged}, rejected {rejected}\n")
}

fn shared_data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data")
        .join(name)
}

fn gzip(content: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(content).unwrap();
    encoder.finish().unwrap()
}

const HEADER: &str = "id,type,value,category,risk_score,confidence,tlp,tags,description,first_seen,last_seen,updated_at,status\n";

const URLHAUS_HEADER: &str =
    "id,dateadded,url,url_status,last_online,threat,tags,urlhaus_link,reporter";

fn urlhaus_row(id: u32, url: &str, dateadded: &str) -> String {
    format!(
        "\"{id}\",\"{dateadded}\",\"{url}\",\"online\",\"None\",\"malware_download\",\"elf,Mozi\",\
         \"https://urlhaus.abuse.ch/url/{id}/\",\"someone\""
    )
}

fn max_updated_at(indicators: &[Indicator]) -> DateTime<Utc> {
    indicators.iter().map(|row| row.updated_at).max().unwrap()
}

async fn check_urlhaus_dump_import_is_idempotent(cli: FeedCli) {
    let dump = shared_data("urlhaus-online-2025-04-21.csv");

    let first = cli.import(&dump, "urlhaus");
    assert_eq!(
        stdout(&first),
        counts(11_125, 0, 0, 0),
        "{}",
        stderr(&first)
    );
    assert!(first.status.success());
    let before = cli.indicators().await;
    assert_eq!(before.len(), 11_125);

    let second = cli.import(&dump, "urlhaus");
    assert_eq!(
        stdout(&second),
        counts(0, 0, 11_125, 0),
        "{}",
        stderr(&second)
    );
    assert!(second.status.success());
    let after = cli.indicators().await;
    assert_eq!(max_updated_at(&after), max_updated_at(&before));
    assert_eq!(after, before);
}

#[tokio::test]
async fn urlhaus_dump_reimport_changes_nothing_on_sqlite() {
    check_urlhaus_dump_import_is_idempotent(FeedCli::sqlite()).await;
}

#[tokio::test]
async fn urlhaus_dump_reimport_changes_nothing_on_postgres() {
    if let Some(cli) = FeedCli::postgres() {
        check_urlhaus_dump_import_is_idempotent(cli).await;
    }
}

#[tokio::test]
async fn urlhaus_rows_map_to_clear_urls_without_reporter() {
    let cli = FeedCli::sqlite();
    let dump = cli.write(
        "dump.csv",
        format!(
            "{URLHAUS_HEADER}\n{}\n",
            urlhaus_row(1, "http://a.example/x.sh", "2025-04-21 12:15:06")
        )
        .as_bytes(),
    );

    let output = cli.import(&dump, "urlhaus");
    assert_eq!(stdout(&output), counts(1, 0, 0, 0), "{}", stderr(&output));

    let stored = cli.indicators().await;
    let row = &stored[0];
    assert_eq!(row.value, "http://a.example/x.sh");
    assert_eq!(row.indicator_type.as_str(), "url");
    assert_eq!(row.category, "malware_download");
    assert_eq!(row.tlp.as_str(), "TLP:CLEAR");
    assert_eq!(row.tags, ["elf", "Mozi"]);
    assert_eq!(
        row.first_seen,
        "2025-04-21T12:15:06Z".parse::<DateTime<Utc>>().unwrap()
    );
    assert_eq!(row.last_seen, row.first_seen);
    assert_eq!(row.risk_score, None);
    assert_eq!(row.description, None);
    let id = uuid::Uuid::parse_str(&row.id).unwrap();
    assert_eq!(id.get_version_num(), 4);
    let everything = format!("{stored:?}");
    assert!(
        !everything.contains("someone"),
        "reporter leaked: {everything}"
    );
}

#[tokio::test]
async fn urlhaus_comment_header_with_crlf_keeps_line_numbers() {
    let cli = FeedCli::sqlite();
    let text = format!(
        "################################################################\r\n\
         # abuse.ch URLhaus Database Dump (CSV)                         #\r\n\
         ################################################################\r\n\
         #\r\n\
         # {URLHAUS_HEADER}\r\n\
         {}\r\n\
         {}\r\n\
         {}\r\n",
        urlhaus_row(1, "http://a.example/1", "2025-04-21 12:15:06"),
        urlhaus_row(2, "http://a.example/2", "21.04.2025"),
        urlhaus_row(3, "http://a.example/3", "2025-04-21 12:17:00"),
    );
    let dump = cli.write("dump.csv", text.as_bytes());

    let output = cli.import(&dump, "urlhaus");
    assert_eq!(stdout(&output), counts(2, 0, 0, 1));
    assert_eq!(output.status.code(), Some(1));
    let errors = stderr(&output);
    assert!(
        errors.contains("dump.csv:7: dateadded: invalid timestamp"),
        "{errors}"
    );
    let values: Vec<String> = cli
        .indicators()
        .await
        .into_iter()
        .map(|row| row.value)
        .collect();
    assert_eq!(values, ["http://a.example/1", "http://a.example/3"]);
}

#[tokio::test]
async fn each_kind_of_bad_row_is_reported_and_skipped() {
    let cli = FeedCli::sqlite();
    let good = ",domain,good.example,phishing,50,80,TLP:GREEN,a;b,,2025-01-01T00:00:00Z,2025-01-02T00:00:00Z,,active";
    let rows = [
        (
            ",domain,short.example,phishing,50,80,TLP:GREEN",
            "expected 13 columns, found 7",
        ),
        (
            ",hostname,h.example,phishing,,,TLP:GREEN,,,2025-01-01,2025-01-01,,",
            "invalid indicator type \"hostname\"",
        ),
        (
            ",domain,score.example,phishing,150,,TLP:GREEN,,,2025-01-01,2025-01-01,,",
            "invalid risk_score 150",
        ),
        (
            ",domain,time.example,phishing,,,TLP:GREEN,,,yesterday,2025-01-01,,",
            "first_seen: invalid timestamp \"yesterday\"",
        ),
        (
            ",domain,tlp.example,phishing,,,TLP:PURPLE,,,2025-01-01,2025-01-01,,",
            "invalid TLP level \"TLP:PURPLE\"",
        ),
        (
            ",domain,,phishing,,,TLP:GREEN,,,2025-01-01,2025-01-01,,",
            "value is empty",
        ),
        (
            ",domain,state.example,phishing,,,TLP:GREEN,,,2025-01-01,2025-01-01,,gone",
            "invalid status \"gone\"",
        ),
        (
            "not-a-uuid,domain,id.example,phishing,,,TLP:GREEN,,,2025-01-01,2025-01-01,,",
            "invalid id \"not-a-uuid\"",
        ),
    ];
    let mut text = HEADER.to_owned();
    text.push_str(good);
    text.push('\n');
    for (row, _) in &rows {
        text.push_str(row);
        text.push('\n');
    }
    let file = cli.write("bad.csv", text.as_bytes());

    let output = cli.import(&file, "csv");
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stdout(&output), counts(1, 0, 0, rows.len() as u64));
    let errors = stderr(&output);
    for (index, (_, reason)) in rows.iter().enumerate() {
        let line = index + 3;
        let expected = format!("bad.csv:{line}: {reason}");
        assert!(
            errors.contains(&expected),
            "missing {expected:?} in:\n{errors}"
        );
    }
    let stored = cli.indicators().await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].tags, ["a", "b"]);
    assert_eq!(stored[0].risk_score, Some(50.0));
}

#[tokio::test]
async fn semicolon_in_a_tag_is_rejected() {
    let cli = FeedCli::sqlite();
    let text = "{\"type\":\"domain\",\"value\":\"ok.example\",\"category\":\"phishing\",\"tlp\":\"TLP:AMBER\",\"tags\":[\"kit\"],\"firstSeen\":\"2025-01-01T00:00:00Z\"}\n\
                {\"type\":\"domain\",\"value\":\"bad.example\",\"category\":\"phishing\",\"tlp\":\"TLP:AMBER\",\"tags\":[\"a;b\"],\"firstSeen\":\"2025-01-01T00:00:00Z\"}\n";
    let file = cli.write("rows.ndjson", text.as_bytes());

    let output = cli.import(&file, "ndjson");
    assert_eq!(stdout(&output), counts(1, 0, 0, 1));
    assert_eq!(output.status.code(), Some(1));
    let errors = stderr(&output);
    assert!(
        errors.contains("rows.ndjson:2: invalid tag \"a;b\""),
        "{errors}"
    );
}

async fn check_ndjson_fields_round_trip(cli: FeedCli) {
    let id = "3f2b8c1e-9d4a-4f6b-8e2d-1a2b3c4d5e6f";
    let text = format!(
        "{{\"id\":\"{id}\",\"type\":\"crypto_wallet\",\"value\":\"0xabc\",\"category\":\"crypto_drainer\",\
         \"riskScore\":87.5,\"confidence\":80,\"tlp\":\"TLP:AMBER+STRICT\",\"tags\":[\"drainer\"],\
         \"description\":\"Drainer wallet\",\"firstSeen\":\"2025-01-01T00:00:00Z\",\
         \"lastSeen\":\"2025-02-01T00:00:00Z\",\"updatedAt\":\"2025-02-01T00:00:00Z\",\"status\":\"revoked\"}}\n"
    );
    let file = cli.write("rows.ndjson", text.as_bytes());

    let output = cli.import(&file, "ndjson");
    assert_eq!(stdout(&output), counts(1, 0, 0, 0), "{}", stderr(&output));
    let stored = cli.indicators().await;
    let row = &stored[0];
    assert_eq!(row.id, id);
    assert_eq!(row.risk_score, Some(87.5));
    assert_eq!(row.confidence, Some(80));
    assert_eq!(row.tlp.as_str(), "TLP:AMBER+STRICT");
    assert_eq!(row.description.as_deref(), Some("Drainer wallet"));
    assert_eq!(row.status.as_str(), "revoked");
    assert_eq!(
        row.last_seen,
        "2025-02-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
    );
}

#[tokio::test]
async fn ndjson_fields_round_trip_on_sqlite() {
    check_ndjson_fields_round_trip(FeedCli::sqlite()).await;
}

#[tokio::test]
async fn ndjson_fields_round_trip_on_postgres() {
    if let Some(cli) = FeedCli::postgres() {
        check_ndjson_fields_round_trip(cli).await;
    }
}

#[tokio::test]
async fn gzip_is_read_by_extension_or_magic_bytes() {
    let cli = FeedCli::sqlite();
    let text = format!(
        "{HEADER},domain,a.example,phishing,,,TLP:CLEAR,,,2025-01-01,2025-01-01,,\n\
         ,domain,b.example,phishing,,,TLP:CLEAR,,,2025-01-01,2025-01-01,,\n"
    );
    let compressed = gzip(text.as_bytes());
    let by_extension = cli.write("rows.csv.gz", &compressed);
    let by_magic = cli.write("rows.csv", &compressed);

    let first = cli.import(&by_extension, "csv");
    assert_eq!(stdout(&first), counts(2, 0, 0, 0), "{}", stderr(&first));
    let second = cli.import(&by_magic, "csv");
    assert_eq!(stdout(&second), counts(0, 0, 2, 0), "{}", stderr(&second));
}

async fn check_changed_row_alone_moves_updated_at(cli: FeedCli) {
    let original = format!(
        "{HEADER},domain,a.example,phishing,,,TLP:CLEAR,,,2025-01-01,2025-01-01,,\n\
         ,domain,b.example,phishing,,,TLP:CLEAR,,,2025-01-01,2025-01-01,,\n"
    );
    let file = cli.write("rows.csv", original.as_bytes());
    cli.import(&file, "csv");
    let before = cli.indicators().await;

    let changed = original.replace("b.example,phishing", "b.example,investment_scam");
    let file = cli.write("rows.csv", changed.as_bytes());
    let output = cli.import(&file, "csv");
    assert_eq!(stdout(&output), counts(0, 1, 1, 0), "{}", stderr(&output));
    let after = cli.indicators().await;

    assert_eq!(after[0], before[0]);
    assert_eq!(after[1].id, before[1].id);
    assert_eq!(after[1].category, "investment_scam");
    assert_eq!(after[1].created_at, before[1].created_at);
    assert!(after[1].updated_at > before[1].updated_at);
}

#[tokio::test]
async fn changed_row_alone_moves_updated_at_on_sqlite() {
    check_changed_row_alone_moves_updated_at(FeedCli::sqlite()).await;
}

#[tokio::test]
async fn changed_row_alone_moves_updated_at_on_postgres() {
    if let Some(cli) = FeedCli::postgres() {
        check_changed_row_alone_moves_updated_at(cli).await;
    }
}

#[tokio::test]
async fn repeated_key_in_one_file_later_row_wins() {
    let cli = FeedCli::sqlite();
    let text = format!(
        "{HEADER},domain,a.example,phishing,,,TLP:CLEAR,,,2025-01-01,2025-01-01,,\n\
         ,domain,a.example,phishing,,,TLP:CLEAR,,,2025-01-01,2025-01-01,,\n\
         ,domain,a.example,crypto_drainer,,,TLP:CLEAR,,,2025-01-01,2025-01-03,,\n"
    );
    let file = cli.write("rows.csv", text.as_bytes());

    let output = cli.import(&file, "csv");
    assert_eq!(stdout(&output), counts(1, 1, 1, 0), "{}", stderr(&output));
    let stored = cli.indicators().await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].category, "crypto_drainer");
}

#[tokio::test]
async fn quoted_field_across_lines_keeps_later_line_numbers() {
    let cli = FeedCli::sqlite();
    let text = format!(
        "{HEADER},domain,a.example,phishing,,,TLP:CLEAR,,\"two\nlines\",2025-01-01,2025-01-01,,\n\
         ,domain,b.example,phishing,,,TLP:NOPE,,,2025-01-01,2025-01-01,,\n"
    );
    let file = cli.write("rows.csv", text.as_bytes());

    let output = cli.import(&file, "csv");
    assert_eq!(stdout(&output), counts(1, 0, 0, 1));
    assert!(
        stderr(&output).contains("rows.csv:4: invalid TLP level"),
        "{}",
        stderr(&output)
    );
    let stored = cli.indicators().await;
    assert_eq!(stored[0].description.as_deref(), Some("two\nlines"));
}

#[tokio::test]
async fn wrong_header_stops_before_loading() {
    let cli = FeedCli::sqlite();
    let file = cli.write("dump.csv", format!("{URLHAUS_HEADER}\n").as_bytes());

    let output = cli.import(&file, "csv");
    assert_eq!(output.status.code(), Some(1));
    let errors = stderr(&output);
    assert!(errors.contains("unknown column \"dateadded\""), "{errors}");
    assert!(errors.contains("--format urlhaus"), "{errors}");
}

#[tokio::test]
async fn stix_format_is_rejected_with_a_clear_message() {
    let cli = FeedCli::sqlite();
    let file = cli.write("bundle.json", b"{}");

    let output = cli.import(&file, "stix");
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("STIX bundles is not supported yet"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test]
async fn missing_file_is_named_in_the_error() {
    let cli = FeedCli::sqlite();
    let output = cli.run(&["import", "nowhere.csv"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("nowhere.csv"),
        "{}",
        stderr(&output)
    );
}
