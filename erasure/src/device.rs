//! Devices: a directory with a role and an identity file.
//!
//! The identity file `cairn-device` is written once when the directory is
//! formatted (tmp file, fsync, rename, fsync dir) and read at every start:
//! ```text
//! CAIRN-DEVICE 1
//! uuid=<32 hex digits>
//! role=<slc|qlc>
//! id=<device id>
//! crc32c=<8 hex digits of the bytes above this line>
//! ```

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::error::{LayoutError, Result};

/// Name of the identity file inside a device directory.
pub const IDENTITY_FILE: &str = "cairn-device";
/// Identity file format version.
pub const IDENTITY_VERSION: u32 = 1;

/// What a device is used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Fast write buffer (mirrored SLC log).
    Slc,
    /// Capacity (erasure-coded stripes).
    Qlc,
}

impl Role {
    /// The role's name in identity files and status.
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Slc => "slc",
            Role::Qlc => "qlc",
        }
    }
}

/// The health of a device as the layout sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceState {
    /// Present, identity matches, serving I/O.
    Online,
    /// Directory or identity missing (or foreign): its shards are read degraded.
    Missing,
    /// Being rebuilt from the survivors.
    Rebuilding,
}

impl DeviceState {
    /// Name for status output.
    pub fn as_str(&self) -> &'static str {
        match self {
            DeviceState::Online => "online",
            DeviceState::Missing => "missing",
            DeviceState::Rebuilding => "rebuilding",
        }
    }
}

/// A parsed identity file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// Random 128-bit identity, hex.
    pub uuid: String,
    /// Role the device was formatted for.
    pub role: Role,
    /// Device id (`slc0`, `qlc3`, ...).
    pub id: String,
}

impl Identity {
    /// A fresh identity with a random uuid.
    pub fn new(id: &str, role: Role) -> Identity {
        let uuid = format!("{:032x}", rand::random::<u128>());
        Identity {
            uuid,
            role,
            id: id.to_string(),
        }
    }

    fn encode(&self) -> String {
        let body = format!(
            "CAIRN-DEVICE {IDENTITY_VERSION}\nuuid={}\nrole={}\nid={}\n",
            self.uuid,
            self.role.as_str(),
            self.id
        );
        let crc = crc32c::crc32c(body.as_bytes());
        format!("{body}crc32c={crc:08x}\n")
    }

    fn decode(text: &str) -> std::result::Result<Identity, String> {
        let idx = text.rfind("crc32c=").ok_or("no crc32c line")?;
        let (body, crc_line) = text.split_at(idx);
        let want = u32::from_str_radix(crc_line.trim().trim_start_matches("crc32c="), 16)
            .map_err(|e| format!("bad crc32c: {e}"))?;
        if crc32c::crc32c(body.as_bytes()) != want {
            return Err("identity checksum mismatch".into());
        }
        let mut lines = body.lines();
        if lines.next() != Some(&format!("CAIRN-DEVICE {IDENTITY_VERSION}")) {
            return Err("unknown identity header or version".into());
        }
        let (mut uuid, mut role, mut id) = (None, None, None);
        for l in lines {
            match l.split_once('=') {
                Some(("uuid", v)) => uuid = Some(v.to_string()),
                Some(("role", "slc")) => role = Some(Role::Slc),
                Some(("role", "qlc")) => role = Some(Role::Qlc),
                Some(("id", v)) => id = Some(v.to_string()),
                _ => return Err(format!("unexpected identity line {l:?}")),
            }
        }
        Ok(Identity {
            uuid: uuid.ok_or("no uuid")?,
            role: role.ok_or("no role")?,
            id: id.ok_or("no id")?,
        })
    }
}

/// Reads a device directory's identity: `Ok(None)` when the directory or
/// identity file does not exist, an error when it exists but is invalid.
pub fn read_identity(dir: &Path) -> Result<Option<Identity>> {
    let path = dir.join(IDENTITY_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => Identity::decode(&text)
            .map(Some)
            .map_err(|e| LayoutError::Corruption(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(LayoutError::io(path.display().to_string(), e)),
    }
}

/// Formats `dir` as a device: creates it and durably writes the identity file.
pub fn format_device(dir: &Path, ident: &Identity) -> Result<()> {
    let ctx = |e| LayoutError::io(dir.display().to_string(), e);
    fs::create_dir_all(dir).map_err(ctx)?;
    if let Some(parent) = dir.parent() {
        sync_dir(parent).map_err(ctx)?;
    }
    let tmp = dir.join(format!("{IDENTITY_FILE}.tmp"));
    let mut f = fs::File::create(&tmp).map_err(ctx)?;
    f.write_all(ident.encode().as_bytes()).map_err(ctx)?;
    f.sync_all().map_err(ctx)?;
    drop(f);
    fs::rename(&tmp, dir.join(IDENTITY_FILE)).map_err(ctx)?;
    sync_dir(dir).map_err(ctx)
}

/// fsyncs a directory so that entries created, renamed or removed in it are durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// A configured device slot.
#[derive(Clone, Debug)]
pub struct DeviceSlot {
    /// Device id (`slc0`, `qlc3`).
    pub id: String,
    /// Role.
    pub role: Role,
    /// Directory.
    pub path: PathBuf,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_round_trip_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("qlc0");
        assert!(read_identity(&d).unwrap().is_none());
        let id = Identity::new("qlc0", Role::Qlc);
        format_device(&d, &id).unwrap();
        assert_eq!(read_identity(&d).unwrap(), Some(id));
        let p = d.join(IDENTITY_FILE);
        let t = fs::read_to_string(&p)
            .unwrap()
            .replace("role=qlc", "role=slc");
        fs::write(&p, t).unwrap();
        assert!(read_identity(&d).is_err());
    }
}
