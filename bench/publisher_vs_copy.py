#!/usr/bin/env python3
"""Publisher benchmark: `partner-feed publish --once` against PostgreSQL's own COPY.

Steps: build the release binary; start a throwaway PostgreSQL cluster on loopback with
the testkit's `hold-test-servers`; fill it with generated indicators (1,000,000 by
default) and the real ScamSniffer set when ../shared/data holds it; then, in every
round, change one row (so the publisher has a new watermark) and measure, one after
the other:

- `partner-feed publish --once` to a local folder store: all pages, downloads, the
  index and the manifest;
- `psql -c "COPY (SELECT every column of the rows a snapshot holds, in the publisher's
  order) TO STDOUT (FORMAT csv)"` into a file: the cost of reading the data at all.

It prints wall time and peak resident memory of both client processes (the server's
own memory is not counted for either) as medians over the rounds, and the ratio.
Usage:
    python3 bench/publisher_vs_copy.py [--rows N] [--rounds R] [--no-scamsniffer]
"""

from __future__ import annotations

import argparse
import os
import subprocess
from pathlib import Path

from common import (
    BINARY,
    REPO,
    build_release,
    fresh_dir,
    log,
    machine,
    measure,
    median,
    product_env,
    require_tools,
    run_product,
)

SCAMSNIFFER = REPO.parent / "shared" / "data" / "scamsniffer-2022-05-31_2026-08-15.csv.gz"

# 2026-01-01T00:00:00Z: row i was last updated i seconds before it.
NEWEST_UPDATE_EPOCH = 1_767_225_600

POSTGRES_ROWS_SQL = """
INSERT INTO indicators (indicator_id, indicator_type, value, category, risk_score, confidence,
    tlp, tags, description, first_seen, last_seen, created_at, updated_at, status)
SELECT
    lpad(to_hex(i), 8, '0') || '-0000-4000-8000-' || lpad(to_hex(i), 12, '0'),
    CASE i % 2 WHEN 0 THEN 'url' ELSE 'domain' END,
    CASE i % 2 WHEN 0 THEN format('https://bench%s.example/login?session=%s', i, i::bigint * 7919)
               ELSE format('bench%s.example', i) END,
    (ARRAY['phishing', 'investment_scam', 'crypto_drainer', 'malware_download'])[i % 4 + 1],
    (i % 1001) / 10.0,
    i % 101,
    (ARRAY['TLP:CLEAR', 'TLP:GREEN', 'TLP:AMBER', 'TLP:AMBER+STRICT', 'TLP:RED'])[(i / 10) % 5 + 1],
    '["bench", "generated"]'::jsonb,
    'Generated indicator ' || i,
    to_timestamp({newest} - i - 172800),
    to_timestamp({newest} - i - 3600),
    to_timestamp({newest} - i - 86400),
    to_timestamp({newest} - i),
    CASE WHEN i % 13 = 0 THEN 'revoked' ELSE 'active' END
FROM generate_series(0, {rows} - 1) AS i;
VACUUM ANALYZE indicators;
"""

# The rows and columns a snapshot reads, in the publisher's order.
COPY_SQL = (
    "COPY (SELECT indicator_id, indicator_type, value, category, risk_score, confidence, tlp, "
    "tags, description, first_seen, last_seen, created_at, updated_at, status "
    "FROM indicators WHERE tlp <> 'TLP:RED' ORDER BY updated_at DESC, indicator_id) "
    "TO STDOUT (FORMAT csv)"
)


def start_postgres() -> tuple[subprocess.Popen, str]:
    """Starts the testkit's throwaway servers and returns the process and a PostgreSQL URL."""
    env = dict(os.environ)
    # Only PostgreSQL is needed: with no virtualenv the S3 server starts only when `weed`
    # is on PATH, and then stays unused.
    env["PARTNER_FEED_PYENV"] = "/nonexistent"
    env.pop("CI", None)
    process = subprocess.Popen(
        ["cargo", "run", "--quiet", "--release", "-p", "partner-feed-testkit", "--bin", "hold-test-servers"],
        cwd=REPO,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    url = None
    for line in process.stdout:
        if line.startswith("postgres "):
            url = line.split(" url=", 1)[1].strip()
        if line.strip() == "ready":
            break
    if url is None:
        process.stdin.close()
        process.wait()
        raise SystemExit("hold-test-servers started no PostgreSQL (are the server binaries installed?)")
    return process, url


def psql(url: str, sql: str, **kwargs) -> None:
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", url], input=sql, text=True, check=True, **kwargs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="generated indicators")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each side (median)")
    parser.add_argument(
        "--no-scamsniffer", action="store_true", help="leave out the real ScamSniffer set"
    )
    args = parser.parse_args()

    require_tools("psql", "cargo")
    build_release()
    workdir = fresh_dir("publisher")
    servers, server_url = start_postgres()
    try:
        database_url = server_url.rsplit("/", 1)[0] + "/bench"
        psql(server_url, "CREATE DATABASE bench;")
        env = product_env(workdir, database_url, {"I4G_PUBLISHER__RETAIN_SNAPSHOTS": "1",
                                                  "I4G_PUBLISHER__PINNED_SNAPSHOT_TTL_SECONDS": "0"})
        run_product(["migrate"], workdir, env)
        log(f"generating {args.rows} indicators")
        psql(database_url, POSTGRES_ROWS_SQL.format(rows=args.rows, newest=NEWEST_UPDATE_EPOCH))
        if not args.no_scamsniffer and SCAMSNIFFER.exists():
            log("importing the ScamSniffer set")
            print(run_product(["import", str(SCAMSNIFFER)], workdir, env).strip())
        total = subprocess.run(
            ["psql", "-X", "-At", database_url, "-c", "SELECT count(*) FROM indicators"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()

        publish_runs, copy_runs = [], []
        for round_number in range(args.rounds):
            psql(
                database_url,
                "UPDATE indicators SET updated_at = now() WHERE indicator_id = "
                f"(SELECT indicator_id FROM indicators ORDER BY indicator_id OFFSET {round_number} LIMIT 1);",
            )
            log(f"round {round_number + 1}: publish --once")
            publish_runs.append(
                measure(
                    [str(BINARY), "publish", "--once"],
                    cwd=workdir, env=env, stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )
            )
            log(f"round {round_number + 1}: COPY")
            with open(workdir / "copy.csv", "wb") as output:
                copy_runs.append(
                    measure(["psql", "-X", "-q", database_url, "-c", COPY_SQL], stdout=output)
                )
    finally:
        servers.stdin.close()
        servers.wait()

    publish_seconds = median([seconds for seconds, _ in publish_runs])
    copy_seconds = median([seconds for seconds, _ in copy_runs])
    publish_peak = max(peak for _, peak in publish_runs)
    copy_peak = max(peak for _, peak in copy_runs)
    print(f"machine: {machine()}")
    print(f"indicators in PostgreSQL: {total} (generated: {args.rows}), median of {args.rounds} runs")
    print(f"{'partner-feed publish --once':32} {publish_seconds:7.1f} s   peak RSS {publish_peak / 1024:6.0f} MiB")
    print(f"{'psql COPY ... TO STDOUT (csv)':32} {copy_seconds:7.1f} s   peak RSS {copy_peak / 1024:6.0f} MiB")
    print(f"ratio publish/COPY: {publish_seconds / copy_seconds:.2f} (target at most 2.00)")
    print(f"publisher peak memory target: under 256 MiB ({'met' if publish_peak < 256 * 1024 else 'not met'})")


if __name__ == "__main__":
    main()
