//! Content negotiation helpers: gzip from `Accept-Encoding`, strong ETags and `If-None-Match`.

use std::io::Write;

use flate2::write::GzEncoder;
use flate2::Compression;
use sha2::{Digest, Sha256};

/// Suffix added to the ETag of the gzip representation, so the two encodings never share a tag.
const GZIP_ETAG_SUFFIX: &str = "-gzip";

/// Returns true when `Accept-Encoding` admits gzip (listed, or `*`, with a non-zero weight).
pub fn accepts_gzip(accept_encoding: Option<&str>) -> bool {
    let Some(header) = accept_encoding else {
        return false;
    };
    let mut gzip_weight = None;
    let mut any_weight = None;
    for entry in header.split(',') {
        let mut parts = entry.split(';');
        let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let weight = parts
            .filter_map(|parameter| {
                let (name, value) = parameter.split_once('=')?;
                name.trim()
                    .eq_ignore_ascii_case("q")
                    .then(|| value.trim().parse::<f32>().ok())
                    .flatten()
            })
            .next()
            .unwrap_or(1.0);
        match coding.as_str() {
            "gzip" | "x-gzip" => gzip_weight = Some(weight),
            "*" => any_weight = Some(weight),
            _ => {}
        }
    }
    gzip_weight
        .or(any_weight)
        .is_some_and(|weight| weight > 0.0)
}

/// Returns the strong ETag of a body: its SHA-256, quoted.
pub fn etag_of(body: &[u8]) -> String {
    etag_from_sha256(&hex::encode(Sha256::digest(body)))
}

/// Returns the strong ETag for a body whose lower-case hex SHA-256 is known.
pub fn etag_from_sha256(sha256: &str) -> String {
    format!("\"{sha256}\"")
}

/// Returns the ETag of the gzip representation of a body tagged `etag`.
pub fn gzip_etag(etag: &str) -> String {
    match etag.strip_suffix('"') {
        Some(open) => format!("{open}{GZIP_ETAG_SUFFIX}\""),
        None => format!("{etag}{GZIP_ETAG_SUFFIX}"),
    }
}

/// Returns true when `If-None-Match` lists `etag` or `*`, compared weakly as RFC 9110 requires for this header.
pub fn if_none_match_matches(if_none_match: Option<&str>, etag: &str) -> bool {
    let Some(header) = if_none_match else {
        return false;
    };
    let wanted = etag.trim_start_matches("W/");
    header
        .split(',')
        .map(str::trim)
        .any(|candidate| candidate == "*" || candidate.trim_start_matches("W/") == wanted)
}

/// Compresses a body with gzip.
pub fn gzip(body: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(body.len() / 4 + 64), Compression::fast());
    encoder
        .write_all(body)
        .and_then(|()| encoder.finish())
        .expect("writing gzip to memory does not fail")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_acceptance_follows_weights() {
        assert!(accepts_gzip(Some("gzip, deflate, br")));
        assert!(accepts_gzip(Some("br;q=1.0, GZIP;q=0.5")));
        assert!(accepts_gzip(Some("*")));
        assert!(!accepts_gzip(Some("gzip;q=0")));
        assert!(!accepts_gzip(Some("*, gzip;q=0")));
        assert!(!accepts_gzip(Some("identity")));
        assert!(!accepts_gzip(None));
    }

    #[test]
    fn if_none_match_compares_weakly_and_lists() {
        let tag = etag_of(b"page");
        assert!(if_none_match_matches(Some(&tag), &tag));
        assert!(if_none_match_matches(
            Some(&format!("\"x\", W/{tag}")),
            &tag
        ));
        assert!(if_none_match_matches(Some("*"), &tag));
        assert!(!if_none_match_matches(Some("\"other\""), &tag));
        assert!(!if_none_match_matches(None, &tag));
    }

    #[test]
    fn gzip_etag_differs_and_round_trips() {
        assert_eq!(gzip_etag("\"abc\""), "\"abc-gzip\"");
        let compressed = gzip(b"hello hello hello");
        let mut decoder = flate2::read::GzDecoder::new(&compressed[..]);
        let mut text = String::new();
        std::io::Read::read_to_string(&mut decoder, &mut text).unwrap();
        assert_eq!(text, "hello hello hello");
    }
}
