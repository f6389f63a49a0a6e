//! Listing: one range scan over a snapshot of `o/<account>\0<bucket>\0`, rolling keys up into
//! common prefixes and seeking past each prefix so a huge "directory" costs one seek.

use std::ops::Bound;

use cairn_metadata::Snapshot;
use cairn_protocols::store::{ListPage, ListQuery};

use super::keys;
use super::record::{decode, ObjectRec};
use super::EngineError;

/// Evaluates `q` over the objects under `base` (an object prefix from [`keys::object_prefix`]).
pub fn list(snap: &Snapshot, base: &[u8], q: &ListQuery) -> Result<ListPage, EngineError> {
    let mut page = ListPage::default();
    if q.max_keys == 0 {
        return Ok(page);
    }
    let mut lower = base.to_vec();
    lower.extend_from_slice(q.prefix.as_bytes());
    let mut lower_bound = Bound::Included(lower.clone());
    if let Some(sa) = &q.start_after {
        if sa.as_str() >= q.prefix.as_str() {
            let mut k = base.to_vec();
            k.extend_from_slice(sa.as_bytes());
            lower_bound = Bound::Excluded(k);
        }
    }
    let upper = keys::prefix_end(&lower);
    let lb = match &lower_bound {
        Bound::Included(k) => Bound::Included(k.as_slice()),
        Bound::Excluded(k) => Bound::Excluded(k.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    };
    let ub = match &upper {
        Some(u) => Bound::Excluded(u.as_slice()),
        None => Bound::Unbounded,
    };
    let mut it = snap.range(lb, ub);
    let delim = q.delimiter.as_deref().filter(|d| !d.is_empty());
    let count = |p: &ListPage| p.objects.len() + p.common_prefixes.len();
    while let Some(item) = it.next() {
        let (k, v) = item.map_err(EngineError::Db)?;
        let Some(raw_key) = k.get(base.len()..) else {
            continue;
        };
        let key = String::from_utf8_lossy(raw_key).into_owned();
        if let Some(sa) = &q.start_after {
            if key.as_str() <= sa.as_str() {
                continue;
            }
        }
        if let Some(d) = delim {
            if let Some(pos) = key[q.prefix.len()..].find(d) {
                let cp = key[..q.prefix.len() + pos + d.len()].to_owned();
                let skip = q.start_after.as_deref().is_some_and(|sa| cp.as_str() <= sa);
                if !skip && page.common_prefixes.last() != Some(&cp) {
                    if count(&page) == q.max_keys {
                        page.is_truncated = true;
                        break;
                    }
                    page.next_marker = Some(cp.clone());
                    page.common_prefixes.push(cp.clone());
                }
                let mut past = base.to_vec();
                past.extend_from_slice(cp.as_bytes());
                if let Some(p) = keys::prefix_end(&past) {
                    it.seek(&p);
                    continue;
                }
                break;
            }
        }
        if count(&page) == q.max_keys {
            page.is_truncated = true;
            break;
        }
        let rec: ObjectRec = decode(&v)?;
        page.next_marker = Some(key.clone());
        page.objects.push(rec.info(&key));
    }
    Ok(page)
}
