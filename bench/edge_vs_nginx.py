#!/usr/bin/env python3
"""Load test of the edge against nginx serving the same page, on loopback only.

Steps: build the release binary; fill a SQLite database with generated indicators
(1,000,000 by default); publish one snapshot; create a key with a rate limit too high
to reject anything and 1,000 more keys; start `partner-feed serve` (audit on) and nginx
(the same default JSON page as a static file, the same key checked by a `map` on the
X-Partner-API-Key header, an access log). Then, with wrk for a fixed time and number
of connections, alternating the servers in every round:

1. the default JSON page, edge against nginx, and the ratio of requests per second;
2. the edge's latency at about half of its peak rate (wrk's delay() paces each
   connection);
3. filtered queries (category, minRiskScore, since, pageSize=500) over the snapshot:
   one query repeated, and thousands of distinct queries in rotation;
4. the default page with 1,000 distinct keys in rotation.

Figures are medians over the rounds. Usage:
    python3 bench/edge_vs_nginx.py [--rows N] [--seconds S] [--connections C] [--rounds R]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import subprocess
import uuid
from pathlib import Path

from common import (
    BINARY,
    CATEGORIES,
    Servers,
    build_release,
    free_port,
    fresh_dir,
    log,
    machine,
    median,
    product_env,
    require_tools,
    run_product,
    run_wrk,
    wait_for_http,
)

HERE = Path(__file__).resolve().parent
ROTATE_SCRIPT = HERE / "rotate.lua"

# 2026-01-01T00:00:00Z: row i was last updated i seconds before it.
NEWEST_UPDATE_EPOCH = 1_767_225_600

SQLITE_ROWS_SQL = """
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {rows} - 1)
INSERT INTO indicators (indicator_id, indicator_type, value, category, risk_score, confidence,
    tlp, tags, description, first_seen, last_seen, created_at, updated_at, status)
SELECT
    printf('%08x-0000-4000-8000-%012x', i, i),
    CASE i % 2 WHEN 0 THEN 'url' ELSE 'domain' END,
    CASE i % 2 WHEN 0 THEN printf('https://bench%d.example/login?session=%d', i, i * 7919)
               ELSE printf('bench%d.example', i) END,
    CASE i % 4 WHEN 0 THEN 'phishing' WHEN 1 THEN 'investment_scam'
               WHEN 2 THEN 'crypto_drainer' ELSE 'malware_download' END,
    (i % 1001) / 10.0,
    i % 101,
    CASE (i / 10) % 5 WHEN 0 THEN 'TLP:CLEAR' WHEN 1 THEN 'TLP:GREEN' WHEN 2 THEN 'TLP:AMBER'
                      WHEN 3 THEN 'TLP:AMBER+STRICT' ELSE 'TLP:RED' END,
    '["bench","generated"]',
    'Generated indicator ' || i,
    strftime('%Y-%m-%dT%H:%M:%SZ', {newest} - i - 172800, 'unixepoch'),
    strftime('%Y-%m-%dT%H:%M:%SZ', {newest} - i - 3600, 'unixepoch'),
    strftime('%Y-%m-%dT%H:%M:%SZ', {newest} - i - 86400, 'unixepoch'),
    strftime('%Y-%m-%dT%H:%M:%SZ', {newest} - i, 'unixepoch'),
    CASE WHEN i % 13 = 0 THEN 'revoked' ELSE 'active' END
FROM n;
"""

NGINX_CONF = """
daemon off;
worker_processes {workers};
{user}
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log {dir}/nginx-access.log;
    client_body_temp_path {dir}/nginx-tmp/body;
    proxy_temp_path {dir}/nginx-tmp/proxy;
    fastcgi_temp_path {dir}/nginx-tmp/fastcgi;
    uwsgi_temp_path {dir}/nginx-tmp/uwsgi;
    scgi_temp_path {dir}/nginx-tmp/scgi;
    map $http_x_partner_api_key $partner_key_valid {{
        "{key}" 1;
        default 0;
    }}
    server {{
        listen 127.0.0.1:{port};
        location = /feeds/indicators {{
            if ($partner_key_valid = 0) {{ return 401; }}
            default_type application/json;
            alias {page};
        }}
    }}
}}
"""


def sqlite3(database: Path, sql: str) -> None:
    subprocess.run(["sqlite3", str(database)], input=sql, text=True, check=True)


def insert_keys(database: Path, count: int) -> list[str]:
    """Inserts `count` keys the way the README's admin SQL does and returns the raw keys."""
    raw_keys = [secrets.token_urlsafe(32) for _ in range(count)]
    rows = ",\n".join(
        f"('{uuid.uuid4()}', 'Bench partner {n}', '{hashlib.sha256(raw.encode()).hexdigest()}', "
        f"'{raw[:8]}', '[]', 2000000000, TRUE, 'bench', strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))"
        for n, raw in enumerate(raw_keys)
    )
    sqlite3(
        database,
        "INSERT INTO partner_api_keys (key_id, partner_name, key_hash, key_prefix, scopes, "
        f"rate_limit_per_minute, is_active, created_by, created_at) VALUES\n{rows};\n",
    )
    return raw_keys


def filtered_paths(distinct: bool) -> list[str]:
    """Returns filtered queries: one, or thousands that differ in their filters."""
    if not distinct:
        return [
            "/feeds/indicators?category=phishing&minRiskScore=50&since=2025-12-25&pageSize=500"
        ]
    paths = []
    for score in range(1000):
        for category in CATEGORIES:
            day = 20 + score % 10
            paths.append(
                f"/feeds/indicators?category={category}&minRiskScore={score / 10:.1f}"
                f"&since=2025-12-{day:02d}&pageSize=500"
            )
    return paths


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="generated indicators")
    parser.add_argument("--seconds", type=int, default=10, help="duration of each wrk run")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--rounds", type=int, default=3, help="runs per figure (median)")
    args = parser.parse_args()

    require_tools("wrk", "nginx", "sqlite3", "cargo")
    build_release()
    workdir = fresh_dir("edge")
    database = workdir / "feed.db"
    edge_port = free_port()
    env = product_env(
        workdir,
        f"sqlite://{database}",
        {"I4G_EDGE__BIND": f"127.0.0.1:{edge_port}", "RUST_LOG": "info"},
    )

    log(f"generating {args.rows} indicators")
    run_product(["migrate"], workdir, env)
    sqlite3(database, SQLITE_ROWS_SQL.format(rows=args.rows, newest=NEWEST_UPDATE_EPOCH))
    log("publishing a snapshot")
    run_product(["publish", "--once"], workdir, env)
    latest = json.loads((workdir / "objects" / "latest.json").read_text())
    page = workdir / "objects" / "snapshots" / latest["snapshotId"] / "pages" / "json" / "1.json"
    key = insert_keys(database, 1)[0]
    rotation_keys = insert_keys(database, 1000)

    nginx_port = free_port()
    (workdir / "nginx-tmp").mkdir()
    nginx_conf = workdir / "nginx.conf"
    nginx_conf.write_text(
        NGINX_CONF.format(
            workers=os.cpu_count(),
            user="user root;" if os.geteuid() == 0 else "",
            dir=workdir,
            key=key,
            port=nginx_port,
            page=page,
        )
    )

    edge_url = f"http://127.0.0.1:{edge_port}/feeds/indicators"
    nginx_url = f"http://127.0.0.1:{nginx_port}/feeds/indicators"
    headers = {"X-Partner-API-Key": key}
    with Servers() as servers, open(workdir / "edge.log", "w") as edge_log:
        servers.start(
            [str(BINARY), "serve"],
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=edge_log,
            stderr=subprocess.STDOUT,
        )
        servers.start(
            ["nginx", "-p", str(workdir), "-c", str(nginx_conf), "-e", str(workdir / "nginx-error.log")],
            stdin=subprocess.DEVNULL,
        )
        wait_for_http(f"http://127.0.0.1:{edge_port}/readyz", require_ok=True)
        wait_for_http(nginx_url)
        check_same_page(edge_url, nginx_url, key, page)

        print(f"machine: {machine()}")
        print(f"snapshot: {args.rows} generated indicators, default page {page.stat().st_size} bytes")
        print(
            f"wrk: {args.connections} connections, 1 thread, {args.seconds} s per run, "
            f"median of {args.rounds} runs"
        )
        wrk = dict(seconds=args.seconds, connections=args.connections)

        edge_runs, nginx_runs = [], []
        for _ in range(args.rounds):
            nginx_runs.append(run_wrk(nginx_url, headers=headers, **wrk))
            edge_runs.append(run_wrk(edge_url, headers=headers, **wrk))
        nginx_rps = report("default page, nginx", nginx_runs)
        edge_rps = report("default page, edge", edge_runs)
        print(f"ratio edge/nginx: {edge_rps / nginx_rps:.2f} (target at least 0.90)")

        half_rate = edge_rps / 2
        delay_ms = 10
        connections = max(1, min(1000, round(half_rate * delay_ms / 1000)))
        paced_env = {
            "WRK_PATHS_FILE": str(write_lines(workdir / "default-path.txt", ["/feeds/indicators"])),
            "WRK_KEYS_FILE": str(write_lines(workdir / "key.txt", [key])),
            "WRK_DELAY_MS": str(delay_ms),
        }
        paced = [
            run_wrk(
                edge_url,
                seconds=args.seconds,
                connections=connections,
                script=ROTATE_SCRIPT,
                script_env=paced_env,
            )
            for _ in range(args.rounds)
        ]
        report(f"default page, edge, paced to about {half_rate:.0f} req/s", paced)
        print(f"  p99 target at half the peak rate: under 5 ms")

        for label, distinct in [("one filtered query repeated", False), ("4,000 distinct filtered queries", True)]:
            paths_file = write_lines(workdir / "filtered-paths.txt", filtered_paths(distinct))
            runs = [
                run_wrk(
                    edge_url,
                    script=ROTATE_SCRIPT,
                    script_env={"WRK_PATHS_FILE": str(paths_file), "WRK_KEYS_FILE": paced_env["WRK_KEYS_FILE"]},
                    **wrk,
                )
                for _ in range(args.rounds)
            ]
            report(f"{label}, pageSize=500, edge", runs)
        print("  p99 target for filtered queries: under 10 ms")

        keys_file = write_lines(workdir / "keys.txt", rotation_keys)
        runs = [
            run_wrk(
                edge_url,
                script=ROTATE_SCRIPT,
                script_env={"WRK_PATHS_FILE": paced_env["WRK_PATHS_FILE"], "WRK_KEYS_FILE": str(keys_file)},
                **wrk,
            )
            for _ in range(args.rounds)
        ]
        report("default page, 1,000 keys in rotation, edge", runs)


def check_same_page(edge_url: str, nginx_url: str, key: str, page: Path) -> None:
    """Checks that both servers return the stored page for the key, and 401 without it."""
    import urllib.error
    import urllib.request

    expected = page.read_bytes()
    for url in (edge_url, nginx_url):
        request = urllib.request.Request(url, headers={"X-Partner-API-Key": key})
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        if body != expected:
            raise SystemExit(f"{url} did not return the stored default page")
        try:
            urllib.request.urlopen(url, timeout=10).close()
            raise SystemExit(f"{url} returned the page without a key, expected 401")
        except urllib.error.HTTPError as error:
            if error.code != 401:
                raise SystemExit(f"{url} without a key: {error.code}, expected 401")


def report(label: str, runs) -> float:
    rps = median([run.requests_per_second for run in runs])
    p50 = median([run.p50_ms for run in runs])
    p99 = median([run.p99_ms for run in runs])
    print(f"{label:60} {rps:10.0f} req/s   p50 {p50:7.3f} ms   p99 {p99:7.3f} ms")
    return rps


if __name__ == "__main__":
    main()
