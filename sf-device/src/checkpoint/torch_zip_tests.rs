//! Unit tests of the ZIP checkpoint storage check and its pickle machine.

use super::*;

/// `('storage', torch.<class>, key, 'cpu', numel)` as protocol-2 opcodes.
fn pid(class: &str, key: &str, numel: &[u8]) -> Vec<u8> {
    let mut p = b"(X\x07\x00\x00\x00storagectorch\n".to_vec();
    p.extend_from_slice(class.as_bytes());
    p.push(b'\n');
    p.push(b'X');
    p.extend_from_slice(&(key.len() as u32).to_le_bytes());
    p.extend_from_slice(key.as_bytes());
    p.extend_from_slice(b"X\x03\x00\x00\x00cpu");
    p.extend_from_slice(numel);
    p.extend_from_slice(b"tQ");
    p
}

#[test]
fn storage_ids_are_found_through_the_memo() {
    let mut p = b"\x80\x02}q\x00(".to_vec();
    p.extend(pid("FloatStorage", "0", b"K\x03"));
    p.extend_from_slice(b"q\x01h\x01");
    p.extend(pid("BFloat16Storage", "1", b"\x8a\x02\x00\x01"));
    p.extend(pid("FloatStorage", "0", b"K\x05"));
    p.extend_from_slice(b"\x86u.");
    let found = declared_storages(&p).unwrap();
    assert_eq!(found, BTreeMap::from([("0".into(), 20), ("1".into(), 512)]));
}

#[test]
fn bad_pickles_are_errors() {
    let negative = [
        b"\x80\x02".to_vec(),
        pid("FloatStorage", "0", b"J\xff\xff\xff\xff"),
        b".".to_vec(),
    ]
    .concat();
    assert!(
        declared_storages(&negative)
            .unwrap_err()
            .contains("element count")
    );
    let huge = [
        pid(
            "DoubleStorage",
            "0",
            b"\x8a\x08\xff\xff\xff\xff\xff\xff\xff\x7f",
        ),
        b".".to_vec(),
    ]
    .concat();
    assert!(declared_storages(&huge).unwrap_err().contains("64 bits"));
    let class = [pid("NopeStorage", "0", b"K\x01"), b".".to_vec()].concat();
    assert!(
        declared_storages(&class)
            .unwrap_err()
            .contains("NopeStorage")
    );
    let deep = [b")".to_vec(), vec![0x85; 5000], b".".to_vec()].concat();
    assert!(declared_storages(&deep).unwrap_err().contains("nested"));
    for bad in [
        &b"\xff."[..],
        b"",
        b"X\xff\xff\xff\xff",
        b"t.",
        b"0.",
        b"h\x07.",
    ] {
        assert!(declared_storages(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn the_fixture_checkpoints_have_their_storages() {
    for name in ["selfforcing_tiny.pt", "vae_tiny.pth", "t5_tiny.pth"] {
        let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures");
        check_storages(&fixtures.join(name)).unwrap();
    }
}

#[test]
fn stack_and_memo_floods_are_refused() {
    let stack = [
        b"\x80\x02".to_vec(),
        vec![b'N'; MAX_STACK + 1],
        b".".to_vec(),
    ]
    .concat();
    assert!(declared_storages(&stack).unwrap_err().contains("stack"));
    let memo = [
        b"\x80\x04N".to_vec(),
        vec![0x94; MAX_MEMO + 1],
        b".".to_vec(),
    ]
    .concat();
    assert!(declared_storages(&memo).unwrap_err().contains("memoizes"));
    let under = [b"\x80\x04N".to_vec(), vec![0x94; 1000], b".".to_vec()].concat();
    assert!(declared_storages(&under).unwrap().is_empty());
}
