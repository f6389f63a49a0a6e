//! Random payloads generated once per size and reused, object sizes on the command line,
//! and read-back verification.

use bytes::Bytes;
use rand::RngCore;

use crate::BenchError;

/// Objects start at different offsets of one random buffer so each key has distinct bytes
/// without generating new random data per object.
const STRIDE: usize = 4096;

/// The bytes every object of one run is cut from.
#[derive(Clone)]
pub struct Payload {
    buf: Bytes,
    size: usize,
}

impl Payload {
    /// Random bytes for objects of `size` bytes.
    pub fn new(size: usize) -> Payload {
        let mut v = vec![0u8; size + STRIDE];
        rand::rng().fill_bytes(&mut v);
        Payload {
            buf: Bytes::from(v),
            size,
        }
    }

    /// The object size.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The content of object `index` (a zero-copy slice).
    pub fn object(&self, index: u64) -> Bytes {
        let off = (index.wrapping_mul(61) % STRIDE as u64) as usize;
        self.buf.slice(off..off + self.size)
    }

    /// Checks that `got` is object `index`, or its inclusive byte range `range`.
    pub fn verify(
        &self,
        index: u64,
        range: Option<(u64, u64)>,
        got: &[u8],
    ) -> Result<(), BenchError> {
        let obj = self.object(index);
        let want = match range {
            Some((a, b)) => obj.slice(a as usize..(b as usize + 1).min(obj.len())),
            None => obj,
        };
        if got.len() != want.len() {
            return Err(BenchError::Mismatch(format!(
                "object {index}: read {} bytes, wrote {}",
                got.len(),
                want.len()
            )));
        }
        if got != &want[..] {
            return Err(BenchError::Mismatch(format!(
                "object {index}: content differs"
            )));
        }
        Ok(())
    }
}

/// Parses `4096`, `4k`, `4KiB`, `64MiB`, `1G` (binary units) into bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("bad size {s:?}"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("bad size unit in {s:?}")),
    };
    Ok((n * mult as f64) as u64)
}

/// `4 KiB`, `64 MiB`, `123 B`.
pub fn fmt_size(n: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (name, m) in UNITS {
        if n >= m {
            let v = n as f64 / m as f64;
            return if n.is_multiple_of(m) {
                format!("{} {name}", n / m)
            } else {
                format!("{v:.1} {name}")
            };
        }
    }
    format!("{n} B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_print() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("4KiB"), Ok(4096));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert!(parse_size("4 parsecs").is_err());
        assert_eq!(fmt_size(64 << 20), "64 MiB");
        assert_eq!(fmt_size(100), "100 B");
    }

    #[test]
    fn verify_catches_changes() {
        let p = Payload::new(1000);
        let o = p.object(3);
        assert!(p.verify(3, None, &o).is_ok());
        assert!(p.verify(3, Some((10, 19)), &o[10..20]).is_ok());
        assert!(p.verify(4, None, &o).is_err());
        assert!(p.verify(3, None, &o[1..]).is_err());
    }
}
