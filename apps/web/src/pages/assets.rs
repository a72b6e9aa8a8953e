//! The static assets, embedded in the binary: htmx and its SSE extension (vendored from npm,
//! licences beside them in `assets/`) and the style sheet. Served under `/static/` without a
//! session (the sign-in page needs them).
//!
//! The pages link each asset with a hash of its content in the URL (`?v=…`), so that a browser
//! keeps it as long as it likes (`public, max-age` a year, `immutable`) and a new build's copy
//! has a new URL. A request without that hash (or with an older one) gets the asset to be
//! revalidated (`no-cache`); every answer carries the hash as its `ETag`, and a request whose
//! `If-None-Match` names it gets `304 Not Modified`. Nothing else the server sends is cached
//! (the security headers' `no-store`).

use std::sync::LazyLock;

use axum::extract::{Path, Query};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const FILES: &[Asset] = &[
    Asset {
        name: "htmx.min.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../assets/htmx.min.js"),
    },
    Asset {
        name: "sse.min.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../assets/sse.min.js"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        bytes: include_bytes!("../../assets/favicon.svg"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../../assets/app.css"),
    },
];

/// How long a browser keeps an asset whose URL names its content.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// An asset asked for by a URL without its content hash: kept, but asked again each time.
const REVALIDATE: &str = "no-cache";

/// 64-bit FNV-1a: not a security measure, only a name for the content that changes with it.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Each file's content hash, hex, in [`FILES`]' order (computed once).
static HASHES: LazyLock<Vec<String>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|a| format!("{:016x}", fnv1a(a.bytes)))
        .collect()
});

fn find(name: &str) -> Option<(&'static Asset, &'static str)> {
    let i = FILES.iter().position(|a| a.name == name)?;
    Some((&FILES[i], HASHES[i].as_str()))
}

/// The URL of an asset, with its content hash in it (an unknown name gets none; the page
/// then links a 404, which the tests would catch).
pub(crate) fn href(name: &str) -> String {
    match find(name) {
        Some((_, hash)) => format!("/static/{name}?v={hash}"),
        None => format!("/static/{name}"),
    }
}

#[derive(Deserialize)]
pub(crate) struct Version {
    v: Option<String>,
}

pub(crate) async fn serve(
    Path(file): Path<String>,
    Query(version): Query<Version>,
    headers: HeaderMap,
) -> Response {
    let Some((asset, hash)) = find(&file) else {
        return (StatusCode::NOT_FOUND, "no such file").into_response();
    };
    let etag = format!("\"{hash}\"");
    let cache = if version.v.as_deref() == Some(hash) {
        IMMUTABLE
    } else {
        REVALIDATE
    };
    let common = [
        (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        (
            header::ETAG,
            HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"\"")),
        ),
    ];
    let fresh = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            let t = t.trim();
            t == "*" || t.trim_start_matches("W/") == etag
        });
    if fresh {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    (
        common,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        )],
        asset.bytes,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_asset_has_a_distinct_content_hash_in_its_url() {
        let urls: Vec<String> = FILES.iter().map(|a| href(a.name)).collect();
        for (a, url) in FILES.iter().zip(&urls) {
            let v = format!("{:016x}", fnv1a(a.bytes));
            assert_eq!(url, &format!("/static/{}?v={v}", a.name));
        }
        let mut hashes: Vec<&String> = HASHES.iter().collect();
        hashes.sort();
        hashes.dedup();
        assert_eq!(hashes.len(), FILES.len());
        // The hash follows the content.
        assert_ne!(fnv1a(b"a{}"), fnv1a(b"b{}"));
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
    }
}
