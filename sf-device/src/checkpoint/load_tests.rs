//! Unit tests of the checked load: renames, the key filter, trimmed rows, the PyTorch adapter,
//! the cast, and one error listing every problem.

use std::collections::BTreeMap;

use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

use super::*;
use crate::safetensors::Writer;

#[derive(Module, Debug)]
struct Tiny {
    fc: Linear,
    table: Param<Tensor<2>>,
}

fn tiny() -> Tiny {
    let host = Device::flex();
    Tiny {
        fc: LinearConfig::new(2, 3).init(&host),
        table: Param::from_tensor(Tensor::zeros([2, 2], &host)),
    }
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// `model.`-prefixed tensors: `fc` in PyTorch layout (bias in bf16), `rows` with two extra
/// leading rows, and `other`, which the loads below leave out.
fn write_file(dir: &Path) -> PathBuf {
    let path = dir.join("tiny.safetensors");
    let tensors = vec![
        ("model.fc.weight".to_string(), "F32", vec![3, 2]),
        ("model.fc.bias".to_string(), "BF16", vec![3]),
        ("model.rows".to_string(), "F32", vec![4, 2]),
        ("model.other".to_string(), "F32", vec![5]),
    ];
    let mut w = Writer::create(&path, &tensors, &BTreeMap::new()).unwrap();
    w.write("model.fc.weight", &f32_bytes(&[1., 2., 3., 4., 5., 6.]))
        .unwrap();
    let bias: Vec<u8> = [0.5f32, -1.25, 3.0]
        .iter()
        .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
        .collect();
    w.write("model.fc.bias", &bias).unwrap();
    w.write("model.rows", &f32_bytes(&[9., 9., 9., 9., 1., 2., 3., 4.]))
        .unwrap();
    w.write("model.other", &f32_bytes(&[0.; 5])).unwrap();
    w.finish().unwrap();
    path
}

fn expected() -> Vec<(String, Vec<usize>)> {
    [
        ("fc.weight", vec![3, 2]),
        ("fc.bias", vec![3]),
        ("rows", vec![2, 2]),
        ("other", vec![5]),
    ]
    .into_iter()
    .map(|(k, s)| (k.to_string(), s))
    .collect()
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

#[test]
fn a_declared_file_loads_renamed_filtered_trimmed_and_cast() {
    let dir = std::env::temp_dir().join(format!("sf-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = write_file(&dir);
    let weights = Checkpoint::new(&path, TensorFile::Safetensors, expected())
        .file_names([(r"^model\.", "")])
        .module_paths([("^rows$", "table")])
        .only(|k| k != "other")
        .keep_last_rows(["rows".to_string()]);
    assert_eq!(weights.check().unwrap().trimmed, ["rows"]);
    let host = Device::flex();
    let model = weights.load(tiny(), Dtype::F32, &host).unwrap();
    // burn's Linear weight is [in, out]: the PyTorch [out, in] transposed.
    assert_eq!(values(model.fc.weight.val()), [1., 3., 5., 2., 4., 6.]);
    let bias = model.fc.bias.as_ref().unwrap().val();
    assert_eq!(bias.dtype(), burn::tensor::DType::F32);
    assert_eq!(values(bias), [0.5, -1.25, 3.0]);
    assert_eq!(values(model.table.val()), [1., 2., 3., 4.]);

    // Without the filter, `other` has no home in the module: refused, nothing half-loaded.
    let unfiltered = Checkpoint::new(&path, TensorFile::Safetensors, expected())
        .file_names([(r"^model\.", "")])
        .module_paths([("^rows$", "table")])
        .keep_last_rows(["rows".to_string()]);
    let Err(CheckpointError::Mismatch { problems, .. }) =
        unfiltered.load(tiny(), Dtype::F32, &host)
    else {
        panic!("an unused tensor was accepted")
    };
    assert_eq!(problems.unexpected, ["other"]);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn every_problem_is_in_one_error() {
    let dir = std::env::temp_dir().join(format!("sf-load-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = write_file(&dir);
    let mut wrong = expected();
    wrong[1].1 = vec![4];
    wrong.push(("absent".into(), vec![1]));
    // No file-name remap: every file name is unexpected, every expected one missing...
    let e = Checkpoint::new(&path, TensorFile::Safetensors, wrong.clone())
        .check()
        .unwrap_err();
    let CheckpointError::Mismatch { problems, .. } = &e else {
        panic!("{e}")
    };
    assert_eq!((problems.missing.len(), problems.unexpected.len()), (5, 4));
    // ...and with it: a wrong shape, a row count not allowed to differ, a missing tensor.
    let e = Checkpoint::new(&path, TensorFile::Safetensors, wrong)
        .file_names([(r"^model\.", "")])
        .load(tiny(), Dtype::F32, &Device::flex())
        .unwrap_err();
    let CheckpointError::Mismatch { problems, .. } = &e else {
        panic!("{e}")
    };
    assert_eq!(problems.missing, ["absent"]);
    let shapes: Vec<&str> = problems.mismatched.iter().map(|m| m.0.as_str()).collect();
    assert_eq!(shapes, ["model.fc.bias", "model.rows"]);
    assert!(e.to_string().contains("expected [4], found [3]"), "{e}");
    let bad = Checkpoint::new(&path, TensorFile::Safetensors, expected()).file_names([("(", "")]);
    assert!(matches!(bad.check(), Err(CheckpointError::Pattern(_))));
    let absent = Checkpoint::new(dir.join("absent.pth"), TensorFile::Safetensors, expected());
    assert!(matches!(absent.check(), Err(CheckpointError::Read { .. })));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_dtype_burn_cannot_hold_is_refused_by_name() {
    let dir = std::env::temp_dir().join(format!("sf-load-f8-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("f8.safetensors");
    let tensors = vec![("table".to_string(), "F8_E4M3", vec![2, 2])];
    let mut w = Writer::create(&path, &tensors, &BTreeMap::new()).unwrap();
    w.write("table", &[0u8; 4]).unwrap();
    w.finish().unwrap();
    let table = Checkpoint::new(
        &path,
        TensorFile::Safetensors,
        vec![("table".into(), vec![2, 2])],
    );
    #[derive(Module, Debug)]
    struct Table {
        table: Param<Tensor<2>>,
    }
    let module = Table {
        table: Param::from_tensor(Tensor::zeros([2, 2], &Device::flex())),
    };
    let e = table
        .load(module, Dtype::F32, &Device::flex())
        .unwrap_err()
        .to_string();
    assert!(e.contains("'table'") && e.contains("F8_E4M3"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}
