//! Blob-side naming rules: container names, blob names, and metadata names (which Azure
//! requires to be C# identifiers). S3 metadata keys that are not identifiers are shown on the
//! Blob side with azcopy's `rename_` convention, and mapped back when a Blob client writes
//! them, so a round trip through either head keeps the original key.

use std::collections::BTreeMap;

use super::error::BlobError;

/// Prefix of a renamed metadata key (its value is the original value).
pub const RENAME_PREFIX: &str = "rename_";
/// Prefix of the companion key whose value is the original key name.
pub const RENAME_KEY_PREFIX: &str = "rename_key_";

/// Checks a container name: 3–63 characters of lower-case letters, digits and single
/// hyphens, starting and ending with a letter or digit (`$root`, `$logs` and `$web` allowed).
pub fn validate_container_name(name: &str) -> Result<(), BlobError> {
    if matches!(name, "$root" | "$logs" | "$web") {
        return Ok(());
    }
    let b = name.as_bytes();
    let ok_char = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-';
    let valid = (3..=63).contains(&b.len())
        && b.iter().all(ok_char)
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
        && !name.contains("--");
    if valid {
        Ok(())
    } else {
        Err(BlobError::invalid_resource_name(format!(
            "Container name '{name}' must be 3-63 lower-case letters, digits or single hyphens."
        )))
    }
}

/// Checks a blob name: 1–1024 characters, no control characters that cannot travel in a URL.
pub fn validate_blob_name(name: &str) -> Result<(), BlobError> {
    if name.is_empty() || name.chars().count() > 1024 {
        return Err(BlobError::invalid_resource_name(
            "Blob names must be 1-1024 characters.",
        ));
    }
    if name
        .chars()
        .any(|c| c == '\u{0}' || c == '\u{FFFE}' || c == '\u{FFFF}')
    {
        return Err(BlobError::invalid_resource_name(
            "Blob names must not contain NUL or non-characters.",
        ));
    }
    Ok(())
}

/// True when `name` is a C# identifier (what Azure accepts as a metadata name).
pub fn is_csharp_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c == '_' || c.is_alphabetic() => {}
        _ => return false,
    }
    chars.all(|c| c == '_' || c.is_alphanumeric())
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c == '_' || c.is_alphanumeric() {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The metadata a Blob client sees for stored metadata: identifiers as they are; any other key
/// `k` becomes `rename_<k'>` (value) plus `rename_key_<k'>` (the original key), where `k'` is
/// `k` with every non-identifier character replaced by `_`.
pub fn metadata_for_blob(stored: &BTreeMap<String, String>) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(stored.len());
    for (k, v) in stored {
        if is_csharp_identifier(k) {
            out.push((k.clone(), v.clone()));
        } else {
            let clean = sanitize(k);
            out.push((format!("{RENAME_PREFIX}{clean}"), v.clone()));
            out.push((format!("{RENAME_KEY_PREFIX}{clean}"), k.clone()));
        }
    }
    out
}

/// The metadata to store for what a Blob client sent: validates every name (Azure's
/// InvalidMetadata on a non-identifier) and folds `rename_` pairs back to their original keys.
pub fn metadata_from_blob(
    sent: Vec<(String, String)>,
) -> Result<BTreeMap<String, String>, BlobError> {
    let mut plain = BTreeMap::new();
    for (k, v) in sent {
        if !is_csharp_identifier(&k) {
            return Err(BlobError::new(
                http::StatusCode::BAD_REQUEST,
                "InvalidMetadata",
                format!("The metadata specified is invalid. It has characters that are not permitted: {k}"),
            ));
        }
        plain.insert(k, v);
    }
    let mut out = BTreeMap::new();
    for (k, v) in &plain {
        if let Some(clean) = k.strip_prefix(RENAME_KEY_PREFIX) {
            // Folded together with its value below; a lone rename_key_ stays as it is.
            if plain.contains_key(&format!("{RENAME_PREFIX}{clean}")) {
                continue;
            }
            out.insert(k.clone(), v.clone());
        } else if let Some(clean) = k.strip_prefix(RENAME_PREFIX) {
            match plain.get(&format!("{RENAME_KEY_PREFIX}{clean}")) {
                Some(original) if sanitize(original) == clean => {
                    out.insert(original.clone(), v.clone());
                }
                _ => {
                    out.insert(k.clone(), v.clone());
                }
            }
        } else {
            out.insert(k.clone(), v.clone());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_names() {
        for ok in ["abc", "a-b-c", "0123", "$root", &"a".repeat(63)] {
            validate_container_name(ok).unwrap();
        }
        for bad in [
            "ab",
            "-abc",
            "abc-",
            "a--b",
            "ABC",
            "a_b",
            "a.b",
            &"a".repeat(64),
            "",
        ] {
            let e = validate_container_name(bad).unwrap_err();
            assert_eq!(e.code, "InvalidResourceName", "{bad}");
        }
    }

    #[test]
    fn blob_names() {
        validate_blob_name("a/b/c.txt").unwrap();
        validate_blob_name(&"x".repeat(1024)).unwrap();
        assert!(validate_blob_name("").is_err());
        assert!(validate_blob_name(&"x".repeat(1025)).is_err());
        assert!(validate_blob_name("a\u{0}b").is_err());
    }

    #[test]
    fn identifiers() {
        for ok in ["a", "_a", "Abc_1", "größe"] {
            assert!(is_csharp_identifier(ok), "{ok}");
        }
        for bad in ["", "1a", "a-b", "a.b", "a b"] {
            assert!(!is_csharp_identifier(bad), "{bad}");
        }
    }

    #[test]
    fn rename_round_trip() {
        let mut stored = BTreeMap::new();
        stored.insert("content-sha".to_string(), "abc".to_string());
        stored.insert("plain".to_string(), "1".to_string());
        let shown = metadata_for_blob(&stored);
        assert!(shown.contains(&("rename_content_sha".into(), "abc".into())));
        assert!(shown.contains(&("rename_key_content_sha".into(), "content-sha".into())));
        assert!(shown.contains(&("plain".into(), "1".into())));
        assert_eq!(metadata_from_blob(shown).unwrap(), stored);
    }

    #[test]
    fn rejects_invalid_blob_metadata_names() {
        let e = metadata_from_blob(vec![("bad-name".into(), "v".into())]).unwrap_err();
        assert_eq!(e.code, "InvalidMetadata");
    }
}
