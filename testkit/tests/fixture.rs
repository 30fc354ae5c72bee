//! The fixture reader: dtypes, shapes, ranks, missing tensors and files that are not fixtures.

use burn::tensor::Device;
use sf_testkit::{Fixture, FixtureError, open_workspace_fixture};

#[test]
fn reads_the_scheduler_fixture() {
    let fx = open_workspace_fixture("scheduler.safetensors");
    assert_eq!(fx.config()["self_forcing"]["shift"], 5.0);
    assert_eq!(fx.shape("self_forcing.sigmas").unwrap(), [1000]);
    assert_eq!(fx.f64s("self_forcing.sigmas").unwrap()[0], 1.0);
    assert_eq!(
        fx.i64s("self_forcing.denoising_step_list").unwrap(),
        [1000, 750, 500, 250]
    );
    // The one F64 tensor of the format.
    assert_eq!(fx.f64s("self_forcing.query_sigma").unwrap().len(), 12);
    let t = fx
        .tensor::<5>("self_forcing.add_noise.x0", &Device::flex())
        .unwrap();
    assert_eq!(t.dims(), [1, 4, 3, 3, 3]);
    assert!(matches!(
        fx.tensor::<2>("self_forcing.add_noise.x0", &Device::flex()),
        Err(FixtureError::Tensor { .. })
    ));
    assert!(matches!(fx.f64s("nope"), Err(FixtureError::Missing { .. })));
    assert!(matches!(
        fx.f64s("self_forcing.query_index"),
        Err(FixtureError::Tensor { .. })
    ));
    assert!(matches!(
        fx.config_usize("nope"),
        Err(FixtureError::Config { .. })
    ));
}

#[test]
fn rejects_files_that_are_not_fixtures() {
    let dir = std::env::temp_dir().join(format!("sf-fixture-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.safetensors");
    std::fs::write(&bad, b"not a safetensors file").unwrap();
    assert!(matches!(
        Fixture::open(&bad),
        Err(FixtureError::Format { .. })
    ));
    assert!(matches!(
        Fixture::open(dir.join("absent.safetensors")),
        Err(FixtureError::Io { .. })
    ));
    std::fs::remove_dir_all(&dir).ok();
}
