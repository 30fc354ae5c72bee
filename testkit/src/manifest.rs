//! The real checkpoints' manifests (`fixtures/manifests/*.json`: every key and shape, the
//! tensor and parameter counts), and the one comparison of a key table against them.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::fixture::workspace_fixture;

/// One manifest file.
pub struct Manifest {
    /// Its JSON (`tensors`, `num_tensors`, `total_params`, `config`, ...).
    pub json: Value,
}

impl Manifest {
    /// Reads `fixtures/manifests/<name>`; panics when it is missing (test scaffolding).
    pub fn open(name: &str) -> Manifest {
        let path = workspace_fixture("manifests").join(name);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Manifest {
            json: serde_json::from_slice(&bytes).unwrap(),
        }
    }

    /// The `config` object (the model's hyper-parameters).
    pub fn config(&self) -> &Value {
        &self.json["config"]
    }

    /// Key → shape of `tensors`, or of `tensors[entry]` for a file with several state dicts.
    pub fn shapes(&self, entry: Option<&str>) -> BTreeMap<String, Vec<usize>> {
        let tensors = match entry {
            Some(e) => &self.json["tensors"][e],
            None => &self.json["tensors"],
        };
        tensors
            .as_object()
            .expect("a `tensors` object")
            .iter()
            .map(|(k, v)| {
                let shape = serde_json::from_value(v["shape"].clone()).expect("a shape list");
                (k.clone(), shape)
            })
            .collect()
    }

    /// Asserts that `keys` (a loader's key table) holds no key twice and equals the manifest's
    /// keys and shapes, its `num_tensors` and its `total_params`.
    pub fn assert_key_table(&self, keys: &[(String, Vec<usize>)]) {
        let ours: BTreeMap<String, Vec<usize>> = keys.iter().cloned().collect();
        assert_eq!(ours.len(), keys.len(), "duplicate keys");
        assert_eq!(ours, self.shapes(None));
        assert_eq!(Some(keys.len() as u64), self.json["num_tensors"].as_u64());
        let params: u64 = keys
            .iter()
            .map(|(_, s)| s.iter().product::<usize>() as u64)
            .sum();
        assert_eq!(Some(params), self.json["total_params"].as_u64());
    }
}
