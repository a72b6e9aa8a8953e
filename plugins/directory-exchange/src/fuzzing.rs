//! Entry points for the fuzz targets in `fuzz/` (not an API: hidden from the docs).
//!
//! What a hostile or broken Exchange Online endpoint can send this backend: an InvokeCommand
//! page, its items (plain JSON objects or CLIXML text), recipient objects with their
//! addresses and `UserCertificate` values, and error bodies.

use serde_json::Value;

/// Decodes `body` as an InvokeCommand answer page as [`crate::client::Client`] reads one
/// (items, CLIXML items, the next-page link), then every recipient object in it as a lookup
/// does; and as an error body.
pub fn decode_page(body: &str) {
    let _ = crate::client::parse_error_body(body);
    let Ok(page) = serde_json::from_str::<Value>(body) else {
        return;
    };
    let _ = page["@odata.nextLink"]
        .as_str()
        .or_else(|| page["odata.nextLink"].as_str());
    let Some(items) = page["value"].as_array() else {
        return;
    };
    for item in items {
        let object = match item.get("_clixml").and_then(Value::as_str) {
            Some(xml) => match crate::clixml::to_json(xml) {
                Ok(v) => v,
                Err(_) => continue,
            },
            None => item.clone(),
        };
        let address = crate::object_address(&object).unwrap_or_default();
        let _ = crate::certificates_of(&object, &address);
        let _ = crate::protocol::decode_byte_list(object.get("UserSMimeCertificate"));
    }
}
