//! The crate graph of `docs/architecture.md`: which workspace crate may depend on which.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// `cargo metadata` of the workspace members.
fn metadata() -> serde_json::Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Normal (non-dev) dependencies of each workspace member on other workspace members.
fn workspace_edges() -> BTreeMap<String, BTreeSet<String>> {
    let meta = metadata();
    let packages = meta["packages"].as_array().unwrap();
    let members: BTreeSet<String> = packages
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    packages
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"].is_null())
                .map(|d| d["name"].as_str().unwrap().to_string())
                .filter(|d| members.contains(d))
                .collect();
            (p["name"].as_str().unwrap().to_string(), deps)
        })
        .collect()
}

#[test]
fn the_crate_graph_is_the_documented_one() {
    let set = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    let models = ["sf-device", "sf-models", "sf-text", "sf-vae"];
    let expected: BTreeMap<String, BTreeSet<String>> = [
        ("sf-device", set(&[])),
        ("sf-models", set(&["sf-device"])),
        ("sf-text", set(&["sf-device"])),
        ("sf-vae", set(&["sf-device"])),
        ("sf-pipeline", set(&models)),
        ("sf-testkit", set(&[&models[..], &["sf-pipeline"]].concat())),
        ("self-forcing", set(&["sf-device", "sf-pipeline"])),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(workspace_edges(), expected);
}

#[test]
fn published_crates_are_published_and_the_testkit_is_not() {
    let meta = metadata();
    for p in meta["packages"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap();
        // `publish = false` appears as an empty list of registries.
        let unpublished = p["publish"].as_array().is_some_and(|r| r.is_empty());
        let expect_unpublished = matches!(name, "sf-testkit" | "self-forcing");
        assert_eq!(unpublished, expect_unpublished, "{name}");
    }
}
