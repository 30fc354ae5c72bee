//! `scheduler.safetensors`: the Self-Forcing table, warping, lookups, `add_noise`, flow-to-x0
//! and one Euler step, for whatever shift and step list the file's config holds.

use burn::tensor::Device;
use sf_pipeline::FlowMatchScheduler;

use super::{CheckError, Checks};
use crate::compare::{Tolerance, compare, compare_exact, compare_f32, compare_tensor};
use crate::fixture::{Fixture, FixtureError};

fn config_value<'a>(fx: &'a Fixture, key: &str) -> Result<&'a serde_json::Value, FixtureError> {
    let value = &fx.config()["self_forcing"][key];
    if value.is_null() {
        return Err(FixtureError::Config {
            origin: fx.file_name(),
            reason: format!("its metadata config has no 'self_forcing.{key}'"),
        });
    }
    Ok(value)
}

fn not_a(fx: &Fixture, key: &str, what: &str) -> FixtureError {
    FixtureError::Config {
        origin: fx.file_name(),
        reason: format!("config self_forcing.{key} is not {what}"),
    }
}

/// Every check of a scheduler fixture.
pub fn checks(fx: &Fixture, device: &Device) -> Checks {
    Checks::run(&fx.file_name(), |c| run(fx, device, c))
}

fn run(fx: &Fixture, device: &Device, c: &mut Checks) -> Result<(), CheckError> {
    let file = fx.file_name();
    let shift = config_value(fx, "shift")?
        .as_f64()
        .ok_or_else(|| not_a(fx, "shift", "a number"))? as f32;
    let steps = config_value(fx, "steps")?
        .as_u64()
        .ok_or_else(|| not_a(fx, "steps", "an unsigned integer"))? as usize;
    let warp = config_value(fx, "warp_denoising_step")?
        .as_bool()
        .ok_or_else(|| not_a(fx, "warp_denoising_step", "a boolean"))?;
    let sched = FlowMatchScheduler::new(shift, steps)?;
    let tol = Tolerance::F32;

    for (name, ours) in [
        ("self_forcing.sigmas", sched.sigmas()),
        ("self_forcing.timesteps", sched.timesteps()),
    ] {
        c.push(compare_f32(&file, name, ours, &fx.f32s(name)?, tol));
    }
    let step_list = fx
        .i64s("self_forcing.denoising_step_list")?
        .into_iter()
        .map(|v| u32::try_from(v).map_err(|_| CheckError::Other(format!("step {v}"))))
        .collect::<Result<Vec<u32>, _>>()?;
    c.push(compare_f32(
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
    c.push(compare_exact(
        &file,
        "self_forcing.query_index",
        &index,
        &fx.i64s("self_forcing.query_index")?,
    ));
    let sigma: Vec<f64> = queries.iter().map(|&t| sched.sigma(t) as f64).collect();
    c.push(compare(
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
    let name = "self_forcing.add_noise.out";
    c.push(compare_tensor(fx, name, noised, name, tol)?);
    let x0 = sched.flow_to_x0(
        fx.tensor::<5>("self_forcing.flow_to_x0.flow", device)?,
        fx.tensor::<5>("self_forcing.flow_to_x0.xt", device)?,
        &t,
    )?;
    let name = "self_forcing.flow_to_x0.out";
    c.push(compare_tensor(fx, name, x0, name, tol)?);

    if fx.has("euler.prev_sample") {
        let sigmas = fx.f32s("euler.sigmas")?;
        let [from, to, ..] = sigmas[..] else {
            return Err(CheckError::Other("euler.sigmas needs two values".into()));
        };
        let stepped = FlowMatchScheduler::euler_step(
            fx.tensor::<5>("euler.sample", device)?,
            fx.tensor::<5>("euler.model_output", device)?,
            from,
            to,
        );
        let name = "euler.prev_sample";
        c.push(compare_tensor(fx, name, stepped, name, tol)?);
    } else {
        c.skip("euler.*", "the file has no euler.prev_sample");
    }
    for prefix in ["unipc", "unipc_diffusers"] {
        if fx.has(&format!("{prefix}.trajectory")) {
            c.skip(
                format!("{prefix}.*"),
                "Wan's multistep UniPC solver belongs to the 50-step bidirectional model; \
                 Self-Forcing samples with its own 4-step schedule",
            );
        }
    }
    Ok(())
}
