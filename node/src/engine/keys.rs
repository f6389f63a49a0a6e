//! Metadata key layout (see `node/FORMAT.md`). Components are joined with `\0`, which no
//! account, bucket, upload id or part id contains and object keys are refused to contain.

/// `b/<account>\0<bucket>`: a bucket record.
pub fn bucket(account: &str, bucket: &str) -> Vec<u8> {
    join(b"b/", &[account, bucket])
}

/// Prefix of every bucket of `account`.
pub fn bucket_prefix(account: &str) -> Vec<u8> {
    let mut k = join(b"b/", &[account]);
    k.push(0);
    k
}

/// `o/<account>\0<bucket>\0<key>`: the current version of an object.
pub fn object(account: &str, bucket: &str, key: &str) -> Vec<u8> {
    join(b"o/", &[account, bucket, key])
}

/// Prefix of every object in a bucket (the key follows).
pub fn object_prefix(account: &str, bucket: &str) -> Vec<u8> {
    let mut k = join(b"o/", &[account, bucket]);
    k.push(0);
    k
}

/// `u/<account>\0<bucket>\0<key>\0<upload>`: an upload in progress.
pub fn upload(account: &str, bucket: &str, key: &str, upload: &str) -> Vec<u8> {
    join(b"u/", &[account, bucket, key, upload])
}

/// Prefix of every upload in a bucket.
pub fn upload_prefix(account: &str, bucket: &str) -> Vec<u8> {
    let mut k = join(b"u/", &[account, bucket]);
    k.push(0);
    k
}

/// Prefix of every upload of every bucket.
pub const UPLOAD_ALL: &[u8] = b"u/";

/// `p/<account>\0<bucket>\0<upload>\0<part>`: a staged part.
pub fn part(account: &str, bucket: &str, upload: &str, part: &str) -> Vec<u8> {
    join(b"p/", &[account, bucket, upload, part])
}

/// Prefix of every part of an upload.
pub fn part_prefix(account: &str, bucket: &str, upload: &str) -> Vec<u8> {
    let mut k = join(b"p/", &[account, bucket, upload]);
    k.push(0);
    k
}

fn join(tag: &[u8], parts: &[&str]) -> Vec<u8> {
    let mut k = Vec::with_capacity(tag.len() + parts.iter().map(|p| p.len() + 1).sum::<usize>());
    k.extend_from_slice(tag);
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            k.push(0);
        }
        k.extend_from_slice(p.as_bytes());
    }
    k
}

/// The smallest key greater than every key starting with `prefix` (`None`: no bound).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut p = prefix.to_vec();
    while let Some(last) = p.pop() {
        if last < 0xff {
            p.push(last + 1);
            return Some(p);
        }
    }
    None
}

/// Splits the components after the tag of a key built by this module.
pub fn split(key: &[u8]) -> Vec<&[u8]> {
    key.get(2..)
        .unwrap_or_default()
        .split(|b| *b == 0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_keys_sort_by_key_within_a_bucket() {
        let a = object("acct", "b", "a/b");
        let b = object("acct", "b", "a/b/c");
        let c = object("acct", "b2", "a");
        assert!(a < b && b < c);
        assert!(a.starts_with(&object_prefix("acct", "b")));
        assert!(!c.starts_with(&object_prefix("acct", "b")));
    }

    #[test]
    fn prefix_end_bounds() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff"), None);
    }
}
