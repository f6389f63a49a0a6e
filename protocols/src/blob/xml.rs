//! The XML the Blob head reads (block lists) and writes (listings, block lists, properties),
//! kept small and explicit: every element Azure's clients read is written here by name.

use quick_xml::events::Event;
use quick_xml::Reader;

use super::error::BlobError;

/// Appends `text` to `out` with the five XML special characters escaped.
pub fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
}

/// Which list a block id in a Put Block List request is looked up in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockSource {
    /// `<Committed>`: the blob's committed list only.
    Committed,
    /// `<Uncommitted>`: the staged blocks only.
    Uncommitted,
    /// `<Latest>`: staged if present, else committed.
    Latest,
}

/// Most blocks a committed block list may hold.
pub const MAX_COMMITTED_BLOCKS: usize = 50_000;

/// The text an entity or character reference stands for: `&#NN;` / `&#xNN;` and the five
/// predefined XML entities; anything else is an InvalidXmlDocument error.
pub fn resolve_ref(r: &quick_xml::events::BytesRef<'_>) -> Result<String, BlobError> {
    let bad = |e: &dyn std::fmt::Display| BlobError::invalid_xml(e.to_string());
    if let Some(c) = r.resolve_char_ref().map_err(|e| bad(&e))? {
        return Ok(c.to_string());
    }
    let name = r.decode().map_err(|e| bad(&e))?;
    let text = match name.as_ref() {
        "amp" => "&",
        "lt" => "<",
        "gt" => ">",
        "quot" => "\"",
        "apos" => "'",
        other => return Err(BlobError::invalid_xml(format!("unknown entity &{other};"))),
    };
    Ok(text.to_owned())
}

/// Parses a Put Block List body into `(source, block id as sent)` in document order.
/// Rejects anything that is not a `<BlockList>` of those three elements with InvalidXmlDocument,
/// and more than [`MAX_COMMITTED_BLOCKS`] entries with InvalidBlockList.
pub fn parse_block_list(body: &[u8]) -> Result<Vec<(BlockSource, String)>, BlobError> {
    let text =
        std::str::from_utf8(body).map_err(|_| BlobError::invalid_xml("body is not UTF-8"))?;
    let mut reader = Reader::from_str(text);
    reader.config_mut().trim_text(true);
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut seen_root = false;
    let mut current: Option<BlockSource> = None;
    let mut id = String::new();
    loop {
        let event = reader
            .read_event()
            .map_err(|e| BlobError::invalid_xml(e.to_string()))?;
        match event {
            Event::Start(e) => {
                let name = e.name();
                match (depth, name.as_ref()) {
                    (0, b"BlockList") if !seen_root => seen_root = true,
                    (1, b"Committed") => current = Some(BlockSource::Committed),
                    (1, b"Uncommitted") => current = Some(BlockSource::Uncommitted),
                    (1, b"Latest") => current = Some(BlockSource::Latest),
                    (_, other) => {
                        return Err(BlobError::invalid_xml(format!(
                            "unexpected element <{}>",
                            String::from_utf8_lossy(other)
                        )))
                    }
                }
                depth += 1;
                id.clear();
            }
            Event::Empty(e) => {
                if depth == 0 && e.name().as_ref() == b"BlockList" && !seen_root {
                    seen_root = true;
                } else {
                    return Err(BlobError::invalid_xml("empty block element"));
                }
            }
            Event::Text(t) => {
                if current.is_none() {
                    return Err(BlobError::invalid_xml("text outside a block element"));
                }
                let decoded = t
                    .decode()
                    .map_err(|e| BlobError::invalid_xml(e.to_string()))?;
                let unescaped = quick_xml::escape::unescape(&decoded)
                    .map_err(|e| BlobError::invalid_xml(e.to_string()))?;
                id.push_str(&unescaped);
            }
            Event::GeneralRef(r) => {
                if current.is_none() {
                    return Err(BlobError::invalid_xml("entity outside a block element"));
                }
                id.push_str(&resolve_ref(&r)?);
            }
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                if let Some(source) = current.take() {
                    out.push((source, std::mem::take(&mut id)));
                    if out.len() > MAX_COMMITTED_BLOCKS {
                        return Err(BlobError::invalid_block_list());
                    }
                }
            }
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) | Event::DocType(_) => {}
            Event::CData(c) => {
                if current.is_none() {
                    return Err(BlobError::invalid_xml("CDATA outside a block element"));
                }
                id.push_str(&String::from_utf8_lossy(&c));
            }
            Event::Eof => break,
        }
    }
    if !seen_root || depth != 0 {
        return Err(BlobError::invalid_xml("expected one <BlockList> element"));
    }
    Ok(out)
}

/// A tiny XML writer: elements are opened and closed by name, text is escaped.
#[derive(Default)]
pub struct XmlWriter {
    buf: String,
}

impl XmlWriter {
    /// A writer that starts with the XML declaration.
    pub fn new() -> Self {
        XmlWriter {
            buf: String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>"),
        }
    }

    /// `<name>`.
    pub fn open(&mut self, name: &str) -> &mut Self {
        self.buf.push('<');
        self.buf.push_str(name);
        self.buf.push('>');
        self
    }

    /// `<name attr="value" …>` with escaped attribute values.
    pub fn open_with(&mut self, name: &str, attrs: &[(&str, &str)]) -> &mut Self {
        self.buf.push('<');
        self.buf.push_str(name);
        for (k, v) in attrs {
            self.buf.push(' ');
            self.buf.push_str(k);
            self.buf.push_str("=\"");
            escape_into(&mut self.buf, v);
            self.buf.push('"');
        }
        self.buf.push('>');
        self
    }

    /// `</name>`.
    pub fn close(&mut self, name: &str) -> &mut Self {
        self.buf.push_str("</");
        self.buf.push_str(name);
        self.buf.push('>');
        self
    }

    /// `<name>text</name>`, text escaped.
    pub fn elem(&mut self, name: &str, text: &str) -> &mut Self {
        self.open(name);
        escape_into(&mut self.buf, text);
        self.close(name)
    }

    /// `<name>text</name>` when `text` is `Some`, `<name />` otherwise.
    pub fn elem_opt(&mut self, name: &str, text: Option<&str>) -> &mut Self {
        match text {
            Some(t) => self.elem(name, t),
            None => {
                self.buf.push('<');
                self.buf.push_str(name);
                self.buf.push_str(" />");
                self
            }
        }
    }

    /// The document.
    pub fn finish(self) -> String {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_ids_resolve_character_and_entity_references() {
        let list = parse_block_list(b"<BlockList><Latest>&#65;&#x42;&amp;C=</Latest></BlockList>")
            .unwrap();
        assert_eq!(list, vec![(BlockSource::Latest, "AB&C=".to_owned())]);
        assert!(parse_block_list(b"<BlockList><Latest>&nope;</Latest></BlockList>").is_err());
    }

    #[test]
    fn parses_block_list_in_order() {
        let body = br#"<?xml version="1.0" encoding="utf-8"?>
<BlockList>
  <Latest>AAAA</Latest>
  <Committed>QkJC</Committed>
  <Uncommitted>Q0ND</Uncommitted>
  <Latest>a+b/c=</Latest>
</BlockList>"#;
        let list = parse_block_list(body).unwrap();
        assert_eq!(
            list,
            vec![
                (BlockSource::Latest, "AAAA".to_string()),
                (BlockSource::Committed, "QkJC".to_string()),
                (BlockSource::Uncommitted, "Q0ND".to_string()),
                (BlockSource::Latest, "a+b/c=".to_string()),
            ]
        );
    }

    #[test]
    fn empty_block_list_is_valid() {
        assert!(parse_block_list(b"<BlockList></BlockList>")
            .unwrap()
            .is_empty());
        assert!(parse_block_list(b"<BlockList/>").unwrap().is_empty());
    }

    #[test]
    fn rejects_malformed_block_lists() {
        for bad in [
            &b""[..],
            b"<BlockList>",
            b"<BlockList><Latest>AAAA</Latest>",
            b"<Blocks><Latest>AAAA</Latest></Blocks>",
            b"<BlockList><Other>AAAA</Other></BlockList>",
            b"<BlockList><Latest><Latest>x</Latest></Latest></BlockList>",
            b"<BlockList></BlockList><BlockList></BlockList>",
            b"<BlockList>text</BlockList>",
            b"not xml at all",
            b"\xff\xfe",
        ] {
            let err = parse_block_list(bad).unwrap_err();
            assert_eq!(
                err.code,
                "InvalidXmlDocument",
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn escapes_text_and_attributes() {
        let mut w = XmlWriter::new();
        w.open_with("A", &[("k", "a\"<b")])
            .elem("B", "x&y<z>")
            .close("A");
        assert!(w
            .finish()
            .ends_with("<A k=\"a&quot;&lt;b\"><B>x&amp;y&lt;z&gt;</B></A>"));
    }
}
