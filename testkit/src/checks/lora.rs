//! `lora_<x>_io.safetensors` (FORMAT.md §2.14): `lora_<x>.pt` (LongLive's `lora.pt` layout)
//! merged into `dit_<x>.safetensors` at load. With the fixture's alpha: the merged weights
//! (`merged.*`), their forward (`flow_merged`) and PEFT's unmerged forward (`flow_lora`). With
//! alpha = rank (the default, scale 1 instead of alpha/r): the base weights plus the fixture's
//! merge delta times `r/alpha`. With a vanishing alpha: the base model's forward (`flow_base`).

use burn::store::{ModuleSnapshot, bridge};
use burn::tensor::Device;
use sf_device::Dtype;
use sf_models::{CheckpointFormat, DitLora, WanModel, load_wan_model_with_lora, module_path};

use super::{CheckError, Checks};
use crate::compare::{Tolerance, compare_f32, compare_tensor};
use crate::configs;
use crate::fixture::Fixture;

/// The merged weights and forwards of `lora_<x>_io.safetensors` (see the module docs).
pub fn io(fx: &Fixture, device: &Device) -> Checks {
    Checks::run(&fx.file_name(), |c| run_io(fx, device, c))
}

/// The keys of every `merged.<Wan key>` of `fx` and the model's weights of those keys in
/// PyTorch layout `[out, in]`, one after the other in that order.
fn weights(model: &WanModel, fx: &Fixture) -> Result<(Vec<String>, Vec<f32>), CheckError> {
    let snapshot = model.collect(None, None, false);
    let keys: Vec<String> = fx
        .names()
        .into_iter()
        .filter_map(|n| n.strip_prefix("merged.").map(str::to_owned))
        .collect();
    let mut values = Vec::new();
    for key in &keys {
        let path = module_path(key);
        let tensor = snapshot
            .iter()
            .find(|t| t.name == path)
            .ok_or_else(|| CheckError::Other(format!("the model has no parameter {path}")))?;
        let data = bridge::to_data(tensor)
            .map_err(|e| CheckError::Other(format!("{path}: {e}")))?
            .convert::<f32>();
        let dims = data.shape().to_vec();
        let [d_in, d_out] = dims[..] else {
            return Err(CheckError::Other(format!("{path} is not 2-D")));
        };
        let burn_layout = data
            .try_to_vec::<f32>()
            .map_err(|e| CheckError::Other(format!("{path}: {e:?}")))?;
        // burn's Linear stores [in, out].
        values.extend(
            (0..d_out)
                .flat_map(|o| (0..d_in).map(move |i| (o, i)))
                .map(|(o, i)| burn_layout[i * d_out + o]),
        );
    }
    Ok((keys, values))
}

fn run_io(fx: &Fixture, device: &Device, c: &mut Checks) -> Result<(), CheckError> {
    let file = fx.file_name();
    let stem = file
        .strip_prefix("lora_")
        .and_then(|s| s.strip_suffix("_io.safetensors"))
        .ok_or_else(|| CheckError::Other(format!("{file} is not lora_<x>_io.safetensors")))?;
    let base_path = fx.sibling(&format!("dit_{stem}.safetensors"));
    let lora_path = fx.sibling(&format!("lora_{stem}.pt"));
    let config = configs::dit(&base_path)?;
    let alpha = fx
        .config_field("alpha")?
        .as_f64()
        .ok_or_else(|| CheckError::Other("config.alpha is not a number".into()))?;
    let rank = fx.config_usize("rank")? as f64;
    let load = |lora: DitLora| {
        load_wan_model_with_lora(
            &base_path,
            &CheckpointFormat::WanSafetensors,
            Some(&lora),
            &config,
            device,
            Dtype::F32,
        )
    };
    let x = fx.tensor::<5>("x", device)?;
    let t = fx.f32s("t")?;
    let context = fx.tensor::<3>("context", device)?;
    let forward = |model: &WanModel| model.forward(x.clone(), &t, context.clone(), None, 0);

    let model = load(DitLora::new(&lora_path).alpha(alpha))?;
    let (keys, merged) = weights(&model, fx)?;
    let mut reference = Vec::new();
    for key in &keys {
        reference.extend(fx.f32s(&format!("merged.{key}"))?);
    }
    let check = format!("merged.* ({} weights, alpha {alpha})", keys.len());
    c.push(compare_f32(
        &file,
        &check,
        &merged,
        &reference,
        Tolerance::F32,
    ));
    let flow = forward(&model)?;
    c.push(compare_tensor(
        fx,
        "flow_merged",
        flow.clone(),
        "flow_merged",
        Tolerance::F32,
    )?);
    let check = "flow_lora (PEFT unmerged) vs the merged load";
    c.push(compare_tensor(
        fx,
        check,
        flow,
        "flow_lora",
        Tolerance::F32,
    )?);

    // alpha = rank: scale 1, so W + (r/alpha)·(merged − W).
    let model = load(DitLora::new(&lora_path))?;
    let (_, ours) = weights(&model, fx)?;
    let base = Fixture::open(&base_path)?;
    let mut expected = Vec::new();
    let delta_scale = (rank / alpha) as f32;
    for key in &keys {
        let w = base.f32s(key)?;
        let start = expected.len();
        expected.extend(
            w.iter()
                .zip(&reference[start..start + w.len()])
                .map(|(w, m)| w + delta_scale * (m - w)),
        );
    }
    let check = "default alpha (= rank): W + (r/alpha)·(merged − W)";
    c.push(compare_f32(&file, check, &ours, &expected, Tolerance::F32));

    // A vanishing alpha leaves the base model.
    let model = load(DitLora::new(&lora_path).alpha(1e-30))?;
    let check = "alpha 1e-30: flow_base";
    c.push(compare_tensor(
        fx,
        check,
        forward(&model)?,
        "flow_base",
        Tolerance::F32,
    )?);
    Ok(())
}
