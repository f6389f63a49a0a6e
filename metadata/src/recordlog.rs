//! Append-only record logs (used by the WAL and the manifest).
//!
//! A log file is a sequence of frames `len u32 LE | crc32c u32 LE | payload`, where the crc
//! covers the four length bytes and the payload. The first frame is a header whose payload
//! is a 4-byte magic plus a format-version byte.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::ops::Range;
use std::path::Path;

use crate::coding::get_u32;
use crate::error::Error;

/// Bytes of frame header before the payload.
pub(crate) const FRAME_HEADER: usize = 8;

/// Appends one frame holding `payload` to `buf`.
pub(crate) fn frame(buf: &mut Vec<u8>, payload: &[u8]) {
    let len = (payload.len() as u32).to_le_bytes();
    let crc = crc32c::crc32c_append(crc32c::crc32c(&len), payload);
    buf.extend_from_slice(&len);
    buf.extend_from_slice(&crc.to_le_bytes());
    buf.extend_from_slice(payload);
}

/// An open log being appended to.
pub(crate) struct LogWriter {
    file: File,
    size: u64,
}

impl LogWriter {
    /// Creates a new log (which must not exist) with its header frame, fsynced.
    /// The caller fsyncs the directory.
    pub(crate) fn create(path: &Path, magic: &[u8; 4], version: u8) -> Result<LogWriter, Error> {
        let mut file = OpenOptions::new().write(true).create_new(true).open(path)?;
        let mut hdr = Vec::with_capacity(16);
        let mut payload = magic.to_vec();
        payload.push(version);
        frame(&mut hdr, &payload);
        file.write_all(&hdr)?;
        file.sync_all()?;
        Ok(LogWriter {
            file,
            size: hdr.len() as u64,
        })
    }

    /// Writes already-framed bytes (one or more frames) with a single write call.
    pub(crate) fn append_framed(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.file.write_all(bytes)?;
        self.size += bytes.len() as u64;
        Ok(())
    }

    /// Makes everything appended so far durable (fdatasync).
    pub(crate) fn sync(&self) -> Result<(), Error> {
        self.file.sync_data()?;
        Ok(())
    }

    pub(crate) fn size(&self) -> u64 {
        self.size
    }
}

/// The records of one log file, as read back.
pub(crate) struct LogContents {
    /// The whole file.
    pub(crate) data: Vec<u8>,
    /// Byte ranges of each intact record payload (header excluded), in order.
    pub(crate) records: Vec<Range<usize>>,
    /// Offset of a torn tail (an incomplete or damaged final write), if there was one.
    pub(crate) torn_at: Option<usize>,
}

impl LogContents {
    pub(crate) fn payload(&self, i: usize) -> &[u8] {
        &self.data[self.records[i].clone()]
    }
}

fn frame_at(data: &[u8], pos: usize) -> Option<Range<usize>> {
    let len = get_u32(data, pos)? as usize;
    let start = pos + FRAME_HEADER;
    let end = start.checked_add(len)?;
    if end > data.len() {
        return None;
    }
    let crc = get_u32(data, pos + 4)?;
    let actual = crc32c::crc32c_append(crc32c::crc32c(&data[pos..pos + 4]), &data[start..end]);
    (actual == crc).then_some(start..end)
}

/// Reads a log. A damaged or incomplete frame that is followed by no intact, well-formed
/// frame is a torn tail (reported in `torn_at`, records before it are returned); a damaged
/// frame followed by an intact one is corruption. `valid` checks that a payload is
/// well-formed, so that random bytes that happen to frame correctly are not mistaken for a
/// record.
pub(crate) fn read_log(
    path: &Path,
    magic: &[u8; 4],
    version: u8,
    valid: &dyn Fn(&[u8]) -> bool,
) -> Result<LogContents, Error> {
    let data = std::fs::read(path)?;
    let hdr_len = FRAME_HEADER + 5;
    let mut out = LogContents {
        data,
        records: Vec::new(),
        torn_at: None,
    };
    let data = &out.data;
    if data.len() < hdr_len {
        // Crashed while creating the file: nothing was ever acknowledged from it.
        if data.len() >= 4 && get_u32(data, 0) != Some(5) {
            return Err(Error::corruption(path, "bad log header length"));
        }
        out.torn_at = Some(0);
        return Ok(out);
    }
    let Some(h) = frame_at(data, 0) else {
        return Err(Error::corruption(path, "log header checksum mismatch"));
    };
    if &data[h.start..h.start + 4] != magic || h.len() != 5 {
        return Err(Error::corruption(path, "bad log magic"));
    }
    if data[h.start + 4] != version {
        return Err(Error::corruption(
            path,
            format!("unsupported log format version {}", data[h.start + 4]),
        ));
    }
    let mut pos = h.end;
    let mut records = Vec::new();
    while pos < data.len() {
        match frame_at(data, pos).filter(|r| valid(&data[r.clone()])) {
            Some(r) => {
                pos = r.end;
                records.push(r);
            }
            None => {
                // Is there any intact record after the damage? Then it is not a torn tail.
                let later = (pos + 1..data.len().saturating_sub(FRAME_HEADER - 1))
                    .find(|&q| frame_at(data, q).is_some_and(|r| !r.is_empty() && valid(&data[r])));
                if let Some(q) = later {
                    return Err(Error::corruption(
                        path,
                        format!(
                            "damaged record at offset {pos} followed by an intact record at {q}"
                        ),
                    ));
                }
                out.torn_at = Some(pos);
                break;
            }
        }
    }
    out.records = records;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_log(path: &Path, recs: &[&[u8]]) {
        let mut w = LogWriter::create(path, b"TEST", 1).unwrap();
        for r in recs {
            let mut b = Vec::new();
            frame(&mut b, r);
            w.append_framed(&b).unwrap();
        }
        w.sync().unwrap();
    }

    #[test]
    fn torn_tail_vs_middle_damage() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l");
        write_log(&p, &[b"alpha-record", b"beta-record", b"gamma-record"]);
        let ok = |_: &[u8]| true;
        let c = read_log(&p, b"TEST", 1, &ok).unwrap();
        assert_eq!(c.records.len(), 3);
        assert!(c.torn_at.is_none());

        // Truncated last record: torn tail.
        let data = std::fs::read(&p).unwrap();
        std::fs::write(&p, &data[..data.len() - 3]).unwrap();
        let c = read_log(&p, b"TEST", 1, &ok).unwrap();
        assert_eq!(c.records.len(), 2);
        assert!(c.torn_at.is_some());

        // Flipped bit in the middle record: corruption.
        let mut bad = data.clone();
        let mid = 13 + 8 + 12 + 8 + 2;
        bad[mid] ^= 1;
        std::fs::write(&p, &bad).unwrap();
        assert!(matches!(
            read_log(&p, b"TEST", 1, &ok),
            Err(Error::Corruption { .. })
        ));

        // Flipped bit in the last record: torn tail.
        let mut bad = data.clone();
        let n = bad.len();
        bad[n - 2] ^= 0x40;
        std::fs::write(&p, &bad).unwrap();
        let c = read_log(&p, b"TEST", 1, &ok).unwrap();
        assert_eq!(c.records.len(), 2);

        // Bad magic / version.
        assert!(read_log(&p, b"XXXX", 1, &ok).is_err());
        assert!(read_log(&p, b"TEST", 2, &ok).is_err());
    }
}
