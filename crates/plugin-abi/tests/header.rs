//! The checked-in C header is what the generator produces (`UPDATE_EXPECT=1` refreshes it), and
//! the tables are laid out as C lays them out: header first, then one pointer per field.

use smimekit_plugin_abi::{DirectoryV1, Header, KeyStoreV1, Status, c_header};

#[test]
fn checked_in_header_matches_the_generator() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("include/smimekit_plugin.h");
    let want = c_header();
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(&path, &want).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "{} is out of date: run UPDATE_EXPECT=1 cargo test -p smimekit-plugin-abi",
        path.display()
    );
}

#[test]
fn tables_are_a_header_then_pointers() {
    let ptr = std::mem::size_of::<usize>();
    for offsets in [KeyStoreV1::offsets(), DirectoryV1::offsets()] {
        assert_eq!(offsets[0], ("header", 0));
        for (i, (name, off)) in offsets.iter().enumerate().skip(1) {
            assert_eq!(
                *off,
                std::mem::size_of::<Header>() + (i - 1) * ptr,
                "{name}"
            );
        }
    }
}

#[test]
fn status_numbers_are_dense_and_fixed() {
    for (i, s) in Status::ALL.iter().enumerate() {
        assert_eq!(s.2 as usize, i, "{}", s.0);
    }
    assert_eq!(Status::ALL.len() as u32, Status::MAX + 1);
    assert_eq!(Status::PANIC, Status(9));
    assert_eq!(Status::NEEDS_UNLOCK, Status(4));
}
