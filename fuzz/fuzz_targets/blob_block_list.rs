//! Put Block List bodies: any bytes parse to a list or an InvalidXmlDocument / InvalidBlockList
//! error, never a panic; a parsed list re-serializes to one that parses to the same list.
#![no_main]
use cairn_protocols::blob::xml::{parse_block_list, BlockSource, XmlWriter};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(list) = parse_block_list(data) {
        let mut w = XmlWriter::new();
        w.open("BlockList");
        for (source, id) in &list {
            let name = match source {
                BlockSource::Committed => "Committed",
                BlockSource::Uncommitted => "Uncommitted",
                BlockSource::Latest => "Latest",
            };
            w.elem(name, id);
        }
        w.close("BlockList");
        let again = parse_block_list(w.finish().as_bytes()).expect("re-serialized list parses");
        assert_eq!(again.len(), list.len());
    }
});
