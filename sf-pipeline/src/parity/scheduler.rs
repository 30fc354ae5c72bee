//! Checks of `scheduler.safetensors`.

use burn::tensor::Device;
use sf_device::fixture::{Fixture, Tolerance, compare, compare_exact, compare_f32, to_f32s};

use super::ParityReport;
use crate::PipelineError;
use crate::scheduler::FlowMatchScheduler;

/// `scheduler.safetensors`: the Self-Forcing table, warping, lookups, `add_noise`, flow-to-x0
/// and one Euler step, for whatever shift and step list the file's config holds.
pub(super) fn checks(
    fx: &Fixture,
    device: &Device,
    report: &mut ParityReport,
) -> Result<(), PipelineError> {
    let file = fx.file_name();
    let cfg = &fx.config()["self_forcing"];
    let shift = cfg["shift"].as_f64().ok_or_else(|| {
        PipelineError::Config("scheduler fixture config lacks self_forcing.shift".into())
    })? as f32;
    let steps_n = cfg["steps"].as_u64().unwrap_or(1000) as usize;
    let warp = cfg["warp_denoising_step"].as_bool().unwrap_or(true);
    let sched = FlowMatchScheduler::new(shift, steps_n)?;
    let tol = Tolerance::F32;
    let r = &mut report.results;

    r.push(compare_f32(
        &file,
        "self_forcing.sigmas",
        sched.sigmas(),
        &fx.f32s("self_forcing.sigmas")?,
        tol,
    ));
    r.push(compare_f32(
        &file,
        "self_forcing.timesteps",
        sched.timesteps(),
        &fx.f32s("self_forcing.timesteps")?,
        tol,
    ));

    let step_list: Vec<u32> = fx
        .i64s("self_forcing.denoising_step_list")?
        .into_iter()
        .map(|v| v as u32)
        .collect();
    r.push(compare_f32(
        &file,
        "self_forcing.warped_timesteps",
        &sched.denoising_timesteps(&step_list, warp)?,
        &fx.f32s("self_forcing.warped_timesteps")?,
        tol,
    ));

    let queries = fx.f32s("self_forcing.query_t")?;
    let index: Vec<i64> = queries
        .iter()
        .map(|&t| sched.index_of(t as f64) as i64)
        .collect();
    r.push(compare_exact(
        &file,
        "self_forcing.query_index",
        &index,
        &fx.i64s("self_forcing.query_index")?,
    ));
    let sigma: Vec<f64> = queries.iter().map(|&t| sched.sigma(t) as f64).collect();
    r.push(compare(
        &file,
        "self_forcing.query_sigma",
        &sigma,
        &fx.f64s("self_forcing.query_sigma")?,
        tol,
    ));

    let t = fx.f32s("self_forcing.add_noise.t")?;
    let noised = sched.add_noise(
        fx.tensor::<5>("self_forcing.add_noise.x0", device)?,
        fx.tensor::<5>("self_forcing.add_noise.eps", device)?,
        &t,
    )?;
    r.push(compare_f32(
        &file,
        "self_forcing.add_noise.out",
        &to_f32s(noised),
        &fx.f32s("self_forcing.add_noise.out")?,
        tol,
    ));
    let x0 = sched.flow_to_x0(
        fx.tensor::<5>("self_forcing.flow_to_x0.flow", device)?,
        fx.tensor::<5>("self_forcing.flow_to_x0.xt", device)?,
        &t,
    )?;
    r.push(compare_f32(
        &file,
        "self_forcing.flow_to_x0.out",
        &to_f32s(x0),
        &fx.f32s("self_forcing.flow_to_x0.out")?,
        tol,
    ));

    if fx.has("euler.prev_sample") {
        let sigmas = fx.f32s("euler.sigmas")?;
        let stepped = FlowMatchScheduler::euler_step(
            fx.tensor::<5>("euler.sample", device)?,
            fx.tensor::<5>("euler.model_output", device)?,
            sigmas[0],
            sigmas[1],
        );
        r.push(compare_f32(
            &file,
            "euler.prev_sample",
            &to_f32s(stepped),
            &fx.f32s("euler.prev_sample")?,
            tol,
        ));
    }
    for prefix in ["unipc", "unipc_diffusers"] {
        if fx.has(&format!("{prefix}.trajectory")) {
            report.skipped.push((
                format!("{file}: {prefix}.*"),
                "Wan's multistep UniPC solver belongs to the 50-step bidirectional model; \
                 Self-Forcing samples with its own 4-step schedule"
                    .into(),
            ));
        }
    }
    Ok(())
}
