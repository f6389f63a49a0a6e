//! Property test: random batches, gets, scans, snapshots, flushes, compactions and reopens
//! checked against an in-memory BTreeMap model.

use std::collections::BTreeMap;
use std::ops::Bound;

use cairn_metadata::{Db, Options, Snapshot, WriteBatch};
use proptest::prelude::*;

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

#[derive(Debug, Clone)]
enum Op {
    Batch(Vec<(Vec<u8>, Option<Vec<u8>>)>),
    Get(Vec<u8>),
    Range(Vec<u8>, Vec<u8>, bool),
    Prefix(Vec<u8>),
    SeekScan(Vec<u8>, Vec<u8>),
    TakeSnapshot,
    CheckSnapshot(usize),
    Flush,
    Compact,
    Reopen,
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop::sample::select(vec![b'a', b'b', b'c', 0u8, 0xff]),
        0..5,
    )
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => prop::collection::vec(any::<u8>(), 0..40),
        1 => prop::collection::vec(any::<u8>(), 1000..3000),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        30 => prop::collection::vec((key(), prop::option::weighted(0.8, value())), 1..12).prop_map(Op::Batch),
        10 => key().prop_map(Op::Get),
        5 => (key(), key(), any::<bool>()).prop_map(|(a, b, i)| Op::Range(a, b, i)),
        5 => key().prop_map(Op::Prefix),
        3 => (key(), key()).prop_map(|(a, b)| Op::SeekScan(a, b)),
        3 => Just(Op::TakeSnapshot),
        3 => any::<usize>().prop_map(Op::CheckSnapshot),
        2 => Just(Op::Flush),
        1 => Just(Op::Compact),
        2 => Just(Op::Reopen),
    ]
}

fn opts() -> Options {
    Options {
        sync: false,
        memtable_bytes: 4 << 10,
        block_bytes: 256,
        block_restart_interval: 4,
        l0_compaction_trigger: 2,
        l1_bytes: 8 << 10,
        level_size_multiplier: 2,
        target_file_bytes: 4 << 10,
        block_cache_bytes: 64 << 10,
        ..Options::default()
    }
}

fn all(it: cairn_metadata::DbIter) -> Vec<(Vec<u8>, Vec<u8>)> {
    it.map(|r| {
        let (k, v) = r.expect("iteration failed");
        (k.to_vec(), v.to_vec())
    })
    .collect()
}

fn model_all(m: &Model) -> Vec<(Vec<u8>, Vec<u8>)> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn check_snapshot(s: &Snapshot, m: &Model) {
    assert_eq!(
        all(s.range(Bound::Unbounded, Bound::Unbounded)),
        model_all(m)
    );
    for (k, v) in m.iter().take(5) {
        assert_eq!(s.get(k).unwrap().as_deref(), Some(v.as_slice()));
    }
}

fn run(ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let mut db = Some(Db::open(dir.path(), opts()).unwrap());
    let mut model = Model::new();
    let mut snaps: Vec<(Snapshot, Model)> = Vec::new();
    for op in ops {
        let d = db.as_ref().unwrap();
        match op {
            Op::Batch(items) => {
                let mut b = WriteBatch::new();
                for (k, v) in items {
                    match v {
                        Some(v) => {
                            b.put(&k, &v);
                            model.insert(k, v);
                        }
                        None => {
                            b.delete(&k);
                            model.remove(&k);
                        }
                    }
                }
                d.write(b).unwrap();
            }
            Op::Get(k) => {
                assert_eq!(
                    d.get(&k).unwrap().as_deref(),
                    model.get(&k).map(Vec::as_slice)
                );
            }
            Op::Range(a, b, inclusive) => {
                let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
                let upper = if inclusive {
                    Bound::Included(hi.as_slice())
                } else {
                    Bound::Excluded(hi.as_slice())
                };
                let got = all(d.range(Bound::Excluded(lo.as_slice()), upper));
                let want: Vec<_> = model
                    .iter()
                    .filter(|(k, _)| {
                        k.as_slice() > lo.as_slice()
                            && if inclusive {
                                k.as_slice() <= hi.as_slice()
                            } else {
                                k.as_slice() < hi.as_slice()
                            }
                    })
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                assert_eq!(got, want);
            }
            Op::Prefix(p) => {
                let got = all(d.scan_prefix(&p));
                let want: Vec<_> = model
                    .iter()
                    .filter(|(k, _)| k.starts_with(&p))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                assert_eq!(got, want);
            }
            Op::SeekScan(start, seek) => {
                let mut it = d.range(Bound::Included(start.as_slice()), Bound::Unbounded);
                let _ = it.next();
                it.seek(&seek);
                let from = std::cmp::max(start, seek);
                let got: Vec<_> = it.take(5).map(|r| r.unwrap().0.to_vec()).collect();
                let want: Vec<_> = model
                    .range(from..)
                    .take(5)
                    .map(|(k, _)| k.clone())
                    .collect();
                assert_eq!(got, want);
            }
            Op::TakeSnapshot => snaps.push((d.snapshot(), model.clone())),
            Op::CheckSnapshot(i) => {
                if !snaps.is_empty() {
                    let (s, m) = &snaps[i % snaps.len()];
                    check_snapshot(s, m);
                }
            }
            Op::Flush => d.flush().unwrap(),
            Op::Compact => d.compact().unwrap(),
            Op::Reopen => {
                db.take().unwrap().close().unwrap();
                db = Some(Db::open(dir.path(), opts()).unwrap());
            }
        }
    }
    let d = db.as_ref().unwrap();
    assert_eq!(
        all(d.range(Bound::Unbounded, Bound::Unbounded)),
        model_all(&model)
    );
    for (s, m) in &snaps {
        check_snapshot(s, m);
    }
    db.take().unwrap().close().unwrap();
    let d = Db::open(dir.path(), opts()).unwrap();
    assert_eq!(
        all(d.range(Bound::Unbounded, Bound::Unbounded)),
        model_all(&model)
    );
}

fn cases() -> u32 {
    if std::env::var("CAIRN_LONG").is_ok_and(|v| v == "1") {
        256
    } else {
        64
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]
    #[test]
    fn matches_btreemap_model(ops in prop::collection::vec(op(), 1..150)) {
        run(ops);
    }
}
