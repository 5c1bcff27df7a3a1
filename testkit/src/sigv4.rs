//! Minimal S3 client over plain HTTP/1.1 with AWS Signature Version 4, for bucket set-up.
//!
//! `object_store` cannot create buckets, and an async client cannot run inside the blocking
//! accessors that tests call from `#[tokio::test]`, so the kit sends these few requests itself.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use chrono::Utc;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Time allowed for one request, from connecting to the end of the response.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Access key, secret key and region that requests are signed with.
#[derive(Clone)]
pub(crate) struct Credentials {
    pub(crate) access_key: String,
    pub(crate) secret_key: String,
    pub(crate) region: String,
}

/// Status code and body of a response.
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) body: String,
}

/// Sends one signed request to the S3 endpoint on 127.0.0.1:`port`.
///
/// `path` is the object path without percent-encoding, such as `/bucket` or `/bucket/key`.
pub(crate) fn send(
    port: u16,
    credentials: &Credentials,
    method: &str,
    path: &str,
    body: &[u8],
) -> io::Result<Response> {
    let host = format!("127.0.0.1:{port}");
    let path = encode_path(path);
    let now = Utc::now();
    let timestamp = now.format("%Y%m%dT%H%M%SZ").to_string();
    let date = now.format("%Y%m%d").to_string();
    let payload_hash = hex::encode(Sha256::digest(body));

    let signed_headers = "host;x-amz-content-sha256;x-amz-date";
    let canonical_request = format!(
        "{method}\n{path}\n\nhost:{host}\nx-amz-content-sha256:{payload_hash}\nx-amz-date:{timestamp}\n\n{signed_headers}\n{payload_hash}"
    );
    let scope = format!("{date}/{}/s3/aws4_request", credentials.region);
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{timestamp}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    let signing_key = [
        date.as_bytes(),
        credentials.region.as_bytes(),
        b"s3",
        b"aws4_request",
    ]
    .iter()
    .fold(
        format!("AWS4{}", credentials.secret_key).into_bytes(),
        |key, part| hmac_sha256(&key, part),
    );
    let signature = hex::encode(hmac_sha256(&signing_key, string_to_sign.as_bytes()));
    let authorization = format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
        credentials.access_key
    );

    let mut stream = TcpStream::connect(&host)?;
    stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    stream.set_write_timeout(Some(REQUEST_TIMEOUT))?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nx-amz-content-sha256: {payload_hash}\r\n\
         x-amz-date: {timestamp}\r\nAuthorization: {authorization}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;

    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    parse_response(&response)
}

fn parse_response(response: &[u8]) -> io::Result<Response> {
    let text = String::from_utf8_lossy(response);
    let status = text
        .lines()
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "invalid HTTP response: {:?}",
                    text.chars().take(200).collect::<String>()
                ),
            )
        })?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Ok(Response { status, body })
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// Percent-encodes every byte of `path` except unreserved characters and `/`, as SigV4
/// canonical URIs for S3 require.
fn encode_path(path: &str) -> String {
    let mut encoded = String::with_capacity(path.len());
    for byte in path.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                encoded.push(char::from(byte))
            }
            _ => encoded.push_str(&format!("%{byte:02X}")),
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_path_keeps_unreserved_characters_and_slashes() {
        assert_eq!(encode_path("/bucket-1/a_b.c~d"), "/bucket-1/a_b.c~d");
    }

    #[test]
    fn encode_path_escapes_spaces_and_utf8() {
        assert_eq!(encode_path("/b/a b"), "/b/a%20b");
        assert_eq!(encode_path("/b/é"), "/b/%C3%A9");
    }

    #[test]
    fn parse_response_reads_status_and_body() {
        let response = parse_response(b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope")
            .expect("a well-formed response");
        assert_eq!(response.status, 404);
        assert_eq!(response.body, "nope");
    }

    #[test]
    fn parse_response_rejects_text_without_status_line() {
        assert!(parse_response(b"garbage").is_err());
    }
}
