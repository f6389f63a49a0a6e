//! Blob XML request bodies beyond block lists: Set Blob Tags, Set Blob Service Properties and
//! Set Container ACL (signed identifiers).
//!
//! - Tags: any body parses or fails with an Azure error, never a panic; parsed tags written
//!   back the way Get Blob Tags writes them parse to the same tags; and any tags at all
//!   (arbitrary strings) written that way parse back exactly, so what a client sends is what
//!   is validated and stored.
//! - Service properties: any body is accepted or rejected without panicking; an accepted one
//!   is refused once a second root element follows it.
//! - Container ACL: any body is accepted or rejected without panicking; an accepted body
//!   holds no `<SignedIdentifier>` element in any spelling (stored access policies are not
//!   supported and must not be dropped silently).
//!
//! Input: first byte mod 4 picks tags / tags-from-strings / service properties / ACL.
#![no_main]
use cairn_protocols::blob::xml::XmlWriter;
use cairn_protocols::fuzzing::{
    check_container_acl, check_service_properties, parse_blob_tags, validate_blob_tags,
};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

fn write_tags(tags: &[(String, String)]) -> String {
    let mut w = XmlWriter::new();
    w.open("Tags").open("TagSet");
    for (k, v) in tags {
        w.open("Tag").elem("Key", k).elem("Value", v).close("Tag");
    }
    w.close("TagSet").close("Tags");
    w.finish()
}

fn tags_round_trip(tags: &[(String, String)]) {
    let doc = write_tags(tags);
    let again = parse_blob_tags(doc.as_bytes())
        .unwrap_or_else(|e| panic!("written tags do not parse: {} in {doc:?}", e.message));
    assert_eq!(again, tags, "tags changed through write + parse: {doc:?}");
}

fn tags_from_strings(u: &mut Unstructured) -> Result<()> {
    let mut tags = Vec::new();
    for _ in 0..u.int_in_range(0..=4)? {
        let k: String = u.arbitrary()?;
        let v: String = u.arbitrary()?;
        // XML 1.0 cannot carry most control characters at all.
        let ok = |s: &str| {
            !s.chars()
                .any(|c| c < ' ' && !matches!(c, '\t' | '\n' | '\r'))
        };
        if !ok(&k) || !ok(&v) || k.contains('\r') || v.contains('\r') {
            return Ok(());
        }
        tags.push((k, v));
    }
    tags_round_trip(&tags);
    let _ = validate_blob_tags(&tags);
    Ok(())
}

/// Whether `doc` holds an element named `SignedIdentifier` (a stored access policy).
fn has_signed_identifier(doc: &[u8]) -> bool {
    use quick_xml::events::Event;
    let Ok(text) = std::str::from_utf8(doc) else {
        return false;
    };
    let mut r = quick_xml::Reader::from_str(text);
    loop {
        match r.read_event() {
            Ok(Event::Start(e)) | Ok(Event::Empty(e))
                if e.name().as_ref() == b"SignedIdentifier" =>
            {
                return true
            }
            Ok(Event::Eof) | Err(_) => return false,
            _ => {}
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 => {
            if let Ok(tags) = parse_blob_tags(rest) {
                tags_round_trip(&tags);
                let _ = validate_blob_tags(&tags);
            }
        }
        1 => {
            let _ = tags_from_strings(&mut Unstructured::new(rest));
        }
        2 => {
            if check_service_properties(rest).is_ok() {
                let mut twice = rest.to_vec();
                twice.extend_from_slice(b"<StorageServiceProperties/>");
                assert!(
                    check_service_properties(&twice).is_err(),
                    "a body with two root elements was accepted"
                );
            }
        }
        _ => {
            if check_container_acl(rest).is_ok() {
                assert!(
                    !has_signed_identifier(rest),
                    "an ACL body with a stored access policy was accepted: {:?}",
                    String::from_utf8_lossy(rest)
                );
            }
        }
    }
});
