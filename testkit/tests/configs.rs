//! Configurations from fixture metadata: each reader validates, names its source, and refuses
//! what the models cannot run.

use sf_testkit::{FixtureError, configs, open_workspace_fixture, workspace_fixture};

#[test]
fn every_source_gives_the_same_configuration() {
    let path = workspace_fixture("dit_tiny.safetensors");
    let fx = open_workspace_fixture("dit_tiny.safetensors");
    let from_path = configs::dit(&path).unwrap();
    assert_eq!(configs::dit(&fx).unwrap(), from_path);
    assert_eq!(configs::dit(fx.config()).unwrap(), from_path);
    assert_eq!((from_path.dim, from_path.head_dim()), (32, 16));
    assert_eq!(
        configs::umt5(&workspace_fixture("t5_tiny.safetensors"))
            .unwrap()
            .dim,
        32
    );
    assert_eq!(
        configs::wan_vae(&workspace_fixture("vae_tiny.safetensors"))
            .unwrap()
            .dim,
        8
    );
    let taehv = configs::taehv(&workspace_fixture("taehv_tiny.safetensors")).unwrap();
    assert_eq!(taehv.n_f, [32, 16, 8, 8]);
}

#[test]
fn wan_model_arguments_the_causal_model_cannot_run_are_refused() {
    let json = open_workspace_fixture("dit_tiny.safetensors")
        .config()
        .clone();
    let refused = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut v = json.clone();
        edit(&mut v);
        let err = configs::dit(&v).unwrap_err();
        assert!(matches!(err, FixtureError::Config { .. }), "{err}");
        err.to_string()
    };
    assert!(refused(&|v| v["num_heads"] = 3.into()).contains("num_heads"));
    assert!(refused(&|v| v["model_type"] = "i2v".into()).contains("model_type"));
    assert!(refused(&|v| v["window_size"] = serde_json::json!([4, 4])).contains("window_size"));
    assert!(refused(&|v| drop(v.as_object_mut().unwrap().remove("dim"))).contains("dim"));
    assert!(configs::dit(&serde_json::json!([1])).is_err());
}

#[test]
fn other_models_validate_too() {
    let t5 = open_workspace_fixture("t5_tiny.safetensors")
        .config()
        .clone();
    let mut bad = t5.clone();
    bad["num_heads"] = 5.into();
    assert!(configs::umt5(&bad).is_err());
    let vae = open_workspace_fixture("vae_tiny.safetensors")
        .config()
        .clone();
    let mut bad = vae.clone();
    bad["latents_std"] = serde_json::json!([1.0]);
    assert!(configs::wan_vae(&bad).is_err());
    let taehv = open_workspace_fixture("taehv_tiny.safetensors")
        .config()
        .clone();
    let mut bad = taehv.clone();
    bad["n_f"] = serde_json::json!([0, 16, 8, 8]);
    assert!(configs::taehv(&bad).is_err());
    // The wrong model's configuration, and a file without fixture metadata.
    assert!(configs::taehv(&t5).is_err());
    let dir = std::env::temp_dir().join(format!("sf-configs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let plain = dir.join("plain.safetensors");
    std::fs::write(&plain, [&2u64.to_le_bytes()[..], b"{}"].concat()).unwrap();
    let err = configs::dit(&plain).unwrap_err();
    assert!(err.to_string().contains("no __metadata__.fixture"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn rollout_metadata_gives_every_field() {
    let fx = open_workspace_fixture("rollout_rolling.safetensors");
    let config = configs::rollout(&fx).unwrap();
    assert_eq!(
        (
            config.local_attn_size,
            config.sink_size,
            config.num_frame_per_block
        ),
        (Some(5), 1, 3)
    );
    assert_eq!(config.scheduler.num_train_timesteps, 1000);
    // Not a rollout file: the first missing field is named.
    let err = configs::rollout(&open_workspace_fixture("dit_tiny_io.safetensors")).unwrap_err();
    assert!(err.to_string().contains("rollout.local_attn_size"), "{err}");
}
