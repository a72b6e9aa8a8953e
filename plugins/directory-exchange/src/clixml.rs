//! A reader for the CLIXML the admin API sends with `X-ResponseFormat: clixml` (each `value`
//! item is then `{"_clixml": "<Objs …>"}`, exchange-online.md §1.2), turned into the JSON
//! shape the rest of the plugin reads: an object's properties by name, lists as arrays, and a
//! byte array (`<BA>`, base64 in the PowerShell remoting serialization, [MS-PSRP] 2.2.5.1.17)
//! as `{"Data": "<base64>"}`, which [`crate::protocol::decode_bytes`] reads.
//!
//! It reads only what a serialized object needs (elements, attributes, text, the five named
//! entities and character references, comments, the XML declaration); no DTDs, no namespaces
//! beyond dropping prefixes. The input is the service's answer, so it is read defensively:
//! a nesting limit, and every malformed document is an `Err`, never a panic.

use serde_json::{Map, Value};

/// The deepest element nesting accepted (serialized Exchange objects are a few levels deep).
const MAX_DEPTH: usize = 64;

/// One parsed element.
#[derive(Debug, Default)]
struct Element {
    name: String,
    attrs: Vec<(String, String)>,
    children: Vec<Element>,
    text: String,
}

impl Element {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }
}

/// The first object of a CLIXML document (`<Objs><Obj>…`), as JSON.
pub fn to_json(xml: &str) -> Result<Value, String> {
    let root = parse(xml)?;
    let first = if root.name == "Objs" {
        root.children
            .iter()
            .find(|c| c.name != "TN")
            .ok_or("an empty <Objs> document")?
    } else {
        &root
    };
    let mut refs = Vec::new();
    Ok(value(first, &mut refs))
}

/// The JSON value of one serialized element. `refs` keeps objects by `RefId` for `<Ref>`.
fn value(e: &Element, refs: &mut Vec<(String, Value)>) -> Value {
    let v = match e.name.as_str() {
        "Nil" => Value::Null,
        "B" => Value::Bool(e.text.trim().eq_ignore_ascii_case("true")),
        "I16" | "I32" | "I64" | "SB" => e
            .text
            .trim()
            .parse::<i64>()
            .map_or_else(|_| Value::String(e.text.clone()), Value::from),
        "U16" | "U32" | "U64" | "By" => e
            .text
            .trim()
            .parse::<u64>()
            .map_or_else(|_| Value::String(e.text.clone()), Value::from),
        "BA" => {
            let mut m = Map::new();
            m.insert(
                "Data".into(),
                Value::String(e.text.split_whitespace().collect()),
            );
            Value::Object(m)
        }
        "S" | "C" | "DT" | "TS" | "G" | "URI" | "Version" | "XD" | "SBK" | "SS" | "Db" | "Sg"
        | "D" | "PR" => Value::String(unescape_string(&e.text)),
        "Ref" => e
            .attr("RefId")
            .and_then(|id| refs.iter().find(|(k, _)| k == id))
            .map(|(_, v)| v.clone())
            .unwrap_or(Value::Null),
        "Obj" => object(e, refs),
        _ => Value::String(unescape_string(&e.text)),
    };
    if e.name == "Obj"
        && let Some(id) = e.attr("RefId")
    {
        refs.push((id.to_string(), v.clone()));
    }
    v
}

/// An `<Obj>`: a list (`LST`, `IE`, `STK`, `QUE`), a dictionary (`DCT`), an object with
/// properties (`Props`, `MS`), an enum or wrapped primitive, or only its `ToString`.
fn object(e: &Element, refs: &mut Vec<(String, Value)>) -> Value {
    for list in ["LST", "IE", "STK", "QUE"] {
        if let Some(l) = e.child(list) {
            return Value::Array(l.children.iter().map(|c| value(c, refs)).collect());
        }
    }
    if let Some(d) = e.child("DCT") {
        let mut m = Map::new();
        for en in d.children.iter().filter(|c| c.name == "En") {
            let key = en.children.iter().find(|c| c.attr("N") == Some("Key"));
            let val = en.children.iter().find(|c| c.attr("N") == Some("Value"));
            if let Some(k) = key {
                let k = match value(k, refs) {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                let v = val.map_or(Value::Null, |v| value(v, refs));
                m.insert(k, v);
            }
        }
        return Value::Object(m);
    }
    let props: Vec<&Element> = ["Props", "MS"]
        .iter()
        .filter_map(|n| e.child(n))
        .flat_map(|p| p.children.iter())
        .collect();
    if !props.is_empty() {
        let mut m = Map::new();
        for p in props {
            if let Some(n) = p.attr("N") {
                m.insert(n.to_string(), value(p, refs));
            }
        }
        return Value::Object(m);
    }
    if let Some(t) = e.child("ToString") {
        return Value::String(unescape_string(&t.text));
    }
    // An enum or a primitive wrapped in an object: its one value.
    e.children
        .iter()
        .find(|c| !matches!(c.name.as_str(), "TN" | "TNRef"))
        .map_or(Value::Null, |c| value(c, refs))
}

/// PowerShell escapes characters XML cannot carry in strings as `_xHHHH_`.
fn unescape_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("_x") {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let code = tail
            .get(2..6)
            .filter(|_| tail.as_bytes().get(6) == Some(&b'_'))
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .and_then(char::from_u32);
        match code {
            Some(c) => {
                out.push(c);
                rest = &tail[7..];
            }
            None => {
                out.push_str("_x");
                rest = &tail[2..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Parses one XML document into its root element.
fn parse(xml: &str) -> Result<Element, String> {
    let mut p = Parser { s: xml, i: 0 };
    p.skip_misc()?;
    let root = p.element(0)?;
    p.skip_misc()?;
    if p.i < p.s.len() {
        return Err(format!("text after the root element at byte {}", p.i));
    }
    Ok(root)
}

struct Parser<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        let s: &'a str = self.s;
        &s[self.i..]
    }

    fn err(&self, what: &str) -> String {
        format!("malformed CLIXML at byte {}: {what}", self.i)
    }

    /// Skips whitespace, the XML declaration, processing instructions and comments.
    fn skip_misc(&mut self) -> Result<(), String> {
        loop {
            let trimmed = self.rest().trim_start();
            self.i = self.s.len() - trimmed.len();
            if trimmed.starts_with("<?") {
                let end = trimmed.find("?>").ok_or_else(|| self.err("unclosed <?"))?;
                self.i += end + 2;
            } else if trimmed.starts_with("<!--") {
                let end = trimmed
                    .find("-->")
                    .ok_or_else(|| self.err("unclosed comment"))?;
                self.i += end + 3;
            } else {
                return Ok(());
            }
        }
    }

    fn name(&mut self) -> Result<String, String> {
        let r = self.rest();
        let len = r
            .find(|c: char| c.is_whitespace() || matches!(c, '>' | '/' | '='))
            .unwrap_or(r.len());
        if len == 0 {
            return Err(self.err("a name was expected"));
        }
        let raw = &r[..len];
        self.i += len;
        // Namespaces are not needed: drop a prefix.
        Ok(raw.rsplit(':').next().unwrap_or(raw).to_string())
    }

    fn element(&mut self, depth: usize) -> Result<Element, String> {
        if depth > MAX_DEPTH {
            return Err(self.err("nested too deeply"));
        }
        if !self.rest().starts_with('<') {
            return Err(self.err("'<' was expected"));
        }
        self.i += 1;
        let mut e = Element {
            name: self.name()?,
            ..Element::default()
        };
        loop {
            let trimmed = self.rest().trim_start();
            self.i = self.s.len() - trimmed.len();
            if let Some(r) = trimmed.strip_prefix("/>") {
                self.i = self.s.len() - r.len();
                return Ok(e);
            }
            if let Some(r) = trimmed.strip_prefix('>') {
                self.i = self.s.len() - r.len();
                break;
            }
            let key = self.name()?;
            let r = self.rest().trim_start();
            let r = r
                .strip_prefix('=')
                .ok_or_else(|| self.err("'=' was expected"))?
                .trim_start();
            let quote = r.chars().next().filter(|c| matches!(c, '"' | '\''));
            let Some(q) = quote else {
                return Err(self.err("a quoted attribute value was expected"));
            };
            let body = &r[1..];
            let end = body
                .find(q)
                .ok_or_else(|| self.err("unclosed attribute value"))?;
            let v = entities(&body[..end]).map_err(|w| self.err(&w))?;
            self.i = self.s.len() - body.len() + end + 1;
            e.attrs
                .push((key.rsplit(':').next().unwrap_or(&key).to_string(), v));
        }
        // Content: text, children, comments, CDATA, then the end tag.
        loop {
            let r = self.rest();
            let lt = r.find('<').ok_or_else(|| self.err("unclosed element"))?;
            e.text
                .push_str(&entities(&r[..lt]).map_err(|w| self.err(&w))?);
            self.i += lt;
            let r = self.rest();
            if r.starts_with("</") {
                self.i += 2;
                let name = self.name()?;
                if name != e.name {
                    return Err(self.err(&format!("</{name}> closes <{}>", e.name)));
                }
                let r = self.rest().trim_start();
                let r = r
                    .strip_prefix('>')
                    .ok_or_else(|| self.err("'>' was expected"))?;
                self.i = self.s.len() - r.len();
                return Ok(e);
            }
            if r.starts_with("<!--") {
                let end = r.find("-->").ok_or_else(|| self.err("unclosed comment"))?;
                self.i += end + 3;
                continue;
            }
            if let Some(body) = r.strip_prefix("<![CDATA[") {
                let end = body.find("]]>").ok_or_else(|| self.err("unclosed CDATA"))?;
                e.text.push_str(&body[..end]);
                self.i += 9 + end + 3;
                continue;
            }
            let child = self.element(depth + 1)?;
            e.children.push(child);
        }
    }
}

/// Replaces `&lt;` `&gt;` `&amp;` `&quot;` `&apos;` and `&#N;` / `&#xH;`.
fn entities(s: &str) -> Result<String, String> {
    if !s.contains('&') {
        return Ok(s.to_string());
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let tail = &rest[i + 1..];
        let end = tail
            .find(';')
            .filter(|e| *e <= 10)
            .ok_or("an unterminated entity")?;
        let name = &tail[..end];
        let c = match name {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "quot" => '"',
            "apos" => '\'',
            n => {
                let code = if let Some(h) = n.strip_prefix("#x").or_else(|| n.strip_prefix("#X")) {
                    u32::from_str_radix(h, 16).ok()
                } else if let Some(d) = n.strip_prefix('#') {
                    d.parse::<u32>().ok()
                } else {
                    None
                };
                code.and_then(char::from_u32)
                    .ok_or_else(|| format!("unknown entity &{n};"))?
            }
        };
        out.push(c);
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_mailbox_with_certificates() {
        let xml = r#"<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">
<Obj RefId="0"><TN RefId="0"><T>Deserialized.Microsoft.Exchange.Data.Directory.Management.Mailbox</T><T>Deserialized.System.Object</T></TN>
<ToString>alice</ToString>
<Props><S N="Name">alice</S><S N="PrimarySmtpAddress">alice@example.org</S><B N="HiddenFromAddressListsEnabled">false</B>
<I32 N="Count">3</I32><Nil N="Manager" />
<Obj N="UserCertificate" RefId="1"><TN RefId="1"><T>Deserialized.Microsoft.Exchange.Data.MultiValuedProperty`1[[System.Byte[]]]</T></TN>
<LST><BA>MIIB
AA==</BA><BA>AQID</BA></LST></Obj>
<Obj N="UserSMimeCertificate" RefId="2"><TNRef RefId="1" /><LST /></Obj>
<Obj N="RecipientTypeDetails" RefId="3"><TN RefId="2"><T>Microsoft.Exchange.Data.Directory.Recipient.RecipientTypeDetails</T></TN><ToString>UserMailbox</ToString><I64>1</I64></Obj>
<S N="Note">a_x000A_b &amp; c &#x41;</S>
</Props></Obj></Objs>"#;
        let v = to_json(xml).unwrap();
        assert_eq!(v["PrimarySmtpAddress"], "alice@example.org");
        assert_eq!(v["HiddenFromAddressListsEnabled"], false);
        assert_eq!(v["Count"], 3);
        assert_eq!(v["Manager"], Value::Null);
        assert_eq!(
            v["UserCertificate"],
            json!([{"Data": "MIIBAA=="}, {"Data": "AQID"}])
        );
        assert_eq!(v["UserSMimeCertificate"], json!([]));
        assert_eq!(v["RecipientTypeDetails"], "UserMailbox");
        assert_eq!(v["Note"], "a\nb & c A");
        let certs = crate::protocol::decode_byte_list(v.get("UserCertificate")).unwrap();
        assert_eq!(certs[1], vec![1, 2, 3]);
    }

    #[test]
    fn bad_documents_are_errors_not_panics() {
        for bad in [
            "",
            "<Objs>",
            "<Objs><Obj></Objs>",
            "<Objs a=b></Objs>",
            "<Objs><S N=\"x\">&bogus;</S></Objs>",
            "<Objs></Objs>",
            "<Objs>é</Objs>trailing",
            "<",
            "<a x=\"1",
        ] {
            assert!(to_json(bad).is_err(), "{bad:?}");
        }
        let deep = "<Obj>".repeat(100) + &"</Obj>".repeat(100);
        assert!(to_json(&deep).unwrap_err().contains("deeply"));
        // Multi-byte text and odd escapes survive.
        let v = to_json("<Objs><Obj><Props><S N=\"é\">ü_x00</S></Props></Obj></Objs>").unwrap();
        assert_eq!(v["é"], "ü_x00");
    }
}
