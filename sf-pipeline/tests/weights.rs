//! Locating the model files: the local upstream layout, downloads through a local imitation of
//! the Hugging Face hub into a temporary cache, cache hits, and the error messages.

use crate::hub_server;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hub_server::{HubFile, HubServer};
use sf_pipeline::ModelFamily;
use sf_pipeline::weights::{
    FileOrigin, LONGLIVE_FILES, MODEL_FILES, ModelFileKind, ModelLocation, TAEHV_UPSTREAM_URL,
    WeightsError, dit_files, file_spec,
};
use sf_testkit::workspace_fixtures;
use sf_vae::DecoderKind;

/// A fresh, empty scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sf-weights-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Stand-in bytes for each file (small fixtures; only byte equality matters here).
fn content(kind: ModelFileKind) -> Vec<u8> {
    let name = match kind {
        ModelFileKind::Dit => "selfforcing_tiny.pt",
        ModelFileKind::Lora => "lora_tiny.pt",
        ModelFileKind::TextEncoder => "t5_tiny.pth",
        ModelFileKind::Tokenizer => "umt5_tokenizer_golden.json",
        ModelFileKind::WanVae => "vae_tiny.pth",
        ModelFileKind::Taehv => "taehv_tiny.safetensors",
    };
    std::fs::read(workspace_fixtures().join(name)).unwrap()
}

/// A hub holding every model file except `without`, at its real repository and path.
fn hub_without(without: &[ModelFileKind]) -> HubServer {
    hub_of(
        MODEL_FILES
            .iter()
            .filter(|spec| !without.contains(&spec.kind)),
    )
}

/// A hub holding `specs`, at their real repository and path.
fn hub_of<'a>(specs: impl Iterator<Item = &'a sf_pipeline::weights::ModelFileSpec>) -> HubServer {
    let files = specs
        .map(|spec| HubFile {
            repo: spec.repo.into(),
            path: spec.repo_file.into(),
            bytes: content(spec.kind),
            lfs: !spec.repo_file.ends_with(".json"),
        })
        .collect();
    HubServer::start(files)
}

fn hub_location(server: &HubServer, cache: &Path, local_dir: Option<PathBuf>) -> ModelLocation {
    ModelLocation::Hub {
        endpoint: Some(server.endpoint.clone()),
        cache_dir: Some(cache.to_path_buf()),
        local_dir,
        progress: false,
    }
}

/// Writes the real layout under `root` for the given files.
fn local_layout(root: &Path, kinds: &[ModelFileKind]) {
    for &kind in kinds {
        let path = root.join(file_spec(kind).local_path());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content(kind)).unwrap();
    }
}

const WAN_VAE_SET: [ModelFileKind; 4] = [
    ModelFileKind::Dit,
    ModelFileKind::TextEncoder,
    ModelFileKind::Tokenizer,
    ModelFileKind::WanVae,
];

#[test]
fn hub_downloads_into_the_cache_then_needs_no_request() {
    let server = hub_without(&[]);
    let cache = scratch("hub-cache");
    let location = hub_location(&server, &cache, None);

    let files = location.resolve(DecoderKind::WanVae).unwrap();
    let vae = files.vae.clone().expect("vae resolved");
    assert_eq!(files.taehv, None, "TAEHV is not needed for the Wan VAE");
    for (path, kind) in [
        (&files.dit, ModelFileKind::Dit),
        (&files.text_encoder, ModelFileKind::TextEncoder),
        (&files.tokenizer, ModelFileKind::Tokenizer),
        (&vae, ModelFileKind::WanVae),
    ] {
        assert!(
            path.starts_with(&cache),
            "{} is outside the cache",
            path.display()
        );
        assert!(
            path.ends_with(file_spec(kind).repo_file),
            "{}",
            path.display()
        );
        assert_eq!(
            std::fs::read(path).unwrap(),
            content(kind),
            "{kind:?} bytes differ"
        );
    }
    let first = server.requests();
    assert!(
        first.iter().any(|r| r.contains("/cdn/")),
        "LFS redirects followed: {first:?}"
    );

    // Cached: the same paths and not a single request.
    assert_eq!(location.resolve(DecoderKind::WanVae).unwrap(), files);
    assert_eq!(
        server.requests().len(),
        first.len(),
        "cache hit made requests"
    );

    // Switching decoder fetches only the TAEHV weights.
    let tae = location.resolve(DecoderKind::Taehv).unwrap();
    assert_eq!(
        (tae.dit.clone(), tae.vae.clone()),
        (files.dit.clone(), None)
    );
    let taehv = tae.taehv.expect("taehv resolved");
    assert_eq!(std::fs::read(taehv).unwrap(), content(ModelFileKind::Taehv));
    let new: Vec<String> = server.requests()[first.len()..].to_vec();
    let taehv_repo_file = file_spec(ModelFileKind::Taehv).repo_file;
    assert!(
        new.iter()
            .all(|r| r.contains(taehv_repo_file) || r.contains("/cdn/") || r.contains("/api/")),
        "requests for other files: {new:?}"
    );
    std::fs::remove_dir_all(&cache).unwrap();
}

#[test]
fn hub_takes_files_from_the_local_dir_first() {
    let server = hub_without(&[]);
    let cache = scratch("hub-local-cache");
    let root = scratch("hub-local-root");
    local_layout(&root, &[ModelFileKind::TextEncoder, ModelFileKind::Dit]);
    let files = hub_location(&server, &cache, Some(root.clone()))
        .resolve(DecoderKind::WanVae)
        .unwrap();
    assert_eq!(
        files.text_encoder,
        root.join(file_spec(ModelFileKind::TextEncoder).local_path())
    );
    assert_eq!(
        files.dit,
        root.join(file_spec(ModelFileKind::Dit).local_path())
    );
    assert!(files.tokenizer.starts_with(&cache));
    let requests = server.requests();
    for kind in [ModelFileKind::TextEncoder, ModelFileKind::Dit] {
        let file = file_spec(kind).repo_file;
        assert!(
            !requests.iter().any(|r| r.ends_with(file)),
            "{file} was requested: {requests:?}"
        );
    }
    std::fs::remove_dir_all(&cache).unwrap();
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn files_missing_on_the_hub_are_listed_together() {
    let server = hub_without(&[ModelFileKind::Tokenizer, ModelFileKind::WanVae]);
    let cache = scratch("hub-404");
    let err = hub_location(&server, &cache, None)
        .resolve(DecoderKind::WanVae)
        .unwrap_err();
    let WeightsError::Missing { origin, files } = &err else {
        panic!("expected the missing-files error, got {err:?}");
    };
    assert_eq!(origin, &FileOrigin::Hub(server.endpoint.clone()));
    let kinds: Vec<ModelFileKind> = files.iter().map(|f| f.spec.kind).collect();
    assert_eq!(kinds, [ModelFileKind::Tokenizer, ModelFileKind::WanVae]);
    let text = err.to_string();
    for needle in [
        server.endpoint.as_str(),
        "404",
        "google/umt5-xxl/tokenizer.json",
        "huggingface-cli download Wan-AI/Wan2.1-T2V-1.3B google/umt5-xxl/tokenizer.json \
         Wan2.1_VAE.pth --local-dir wan_models/Wan2.1-T2V-1.3B",
    ] {
        assert!(text.contains(needle), "'{needle}' not in:\n{text}");
    }
    std::fs::remove_dir_all(&cache).unwrap();
}

#[test]
fn an_unreachable_hub_fails_fast_with_a_clear_error() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let cache = scratch("hub-down");
    let location = ModelLocation::Hub {
        endpoint: Some(format!("{endpoint}/")),
        cache_dir: Some(cache.clone()),
        local_dir: None,
        progress: false,
    };
    let started = Instant::now();
    let err = location.resolve(DecoderKind::Taehv).unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        matches!(err, WeightsError::HubUnreachable { .. }),
        "{err:?}"
    );
    let text = err.to_string();
    for needle in [
        endpoint.as_str(),
        "local layout",
        "huggingface-cli download",
        TAEHV_UPSTREAM_URL,
    ] {
        assert!(text.contains(needle), "'{needle}' not in:\n{text}");
    }
    std::fs::remove_dir_all(&cache).unwrap();
}

#[test]
fn local_layout_needs_only_the_chosen_decoder() {
    let root = scratch("local");
    local_layout(&root, &WAN_VAE_SET);
    let files = ModelLocation::Local(root.clone())
        .resolve(DecoderKind::WanVae)
        .unwrap();
    let wan = root.join("wan_models/Wan2.1-T2V-1.3B");
    assert_eq!(files.dit, root.join("checkpoints/self_forcing_dmd.pt"));
    assert_eq!(
        files.text_encoder,
        wan.join("models_t5_umt5-xxl-enc-bf16.pth")
    );
    assert_eq!(files.tokenizer, wan.join("google/umt5-xxl/tokenizer.json"));
    assert_eq!(files.vae, Some(wan.join("Wan2.1_VAE.pth")));
    assert_eq!(
        files.decoder(DecoderKind::WanVae),
        Some(wan.join("Wan2.1_VAE.pth").as_path())
    );
    assert_eq!(files.taehv, None);

    let err = ModelLocation::Local(root.clone())
        .resolve(DecoderKind::Taehv)
        .unwrap_err();
    let WeightsError::Missing { files, .. } = &err else {
        panic!("expected the missing-files error, got {err:?}");
    };
    assert_eq!(files.len(), 1, "only TAEHV is missing: {err}");
    let text = err.to_string();
    let expected = format!("curl -L --create-dirs -o checkpoints/taew2_1.pth {TAEHV_UPSTREAM_URL}");
    assert!(text.contains(&expected), "{text}");
    assert!(
        !text.contains("huggingface-cli"),
        "nothing to fetch from the hub: {text}"
    );

    local_layout(&root, &[ModelFileKind::Taehv]);
    let files = ModelLocation::Local(root.clone())
        .resolve(DecoderKind::Taehv)
        .unwrap();
    assert_eq!(files.taehv, Some(root.join("checkpoints/taew2_1.pth")));
    assert_eq!(files.vae, None);
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn missing_local_files_are_listed_with_the_commands_that_fetch_them() {
    let root = scratch("empty");
    let err = ModelLocation::Local(root.clone())
        .resolve(DecoderKind::WanVae)
        .unwrap_err();
    let WeightsError::Missing { origin, files } = &err else {
        panic!("expected the missing-files error, got {err:?}");
    };
    assert_eq!(origin, &FileOrigin::Local(root.clone()));
    assert_eq!(files.len(), 4);
    let text = err.to_string();
    println!("{text}");
    assert!(text.starts_with(&format!("4 model file(s) missing under {}", root.display())));
    for kind in WAN_VAE_SET {
        let path = root.join(file_spec(kind).local_path());
        assert!(
            text.contains(&path.display().to_string()),
            "{} not listed",
            path.display()
        );
    }
    for command in [
        "huggingface-cli download gdhe17/Self-Forcing checkpoints/self_forcing_dmd.pt --local-dir .",
        "huggingface-cli download Wan-AI/Wan2.1-T2V-1.3B models_t5_umt5-xxl-enc-bf16.pth \
         google/umt5-xxl/tokenizer.json Wan2.1_VAE.pth --local-dir wan_models/Wan2.1-T2V-1.3B",
    ] {
        assert!(text.contains(command), "'{command}' not in:\n{text}");
    }
    assert!(
        !text.contains("taew2_1"),
        "TAEHV is not needed for the Wan VAE"
    );
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn longlive_files_come_from_its_repository_and_not_self_forcings() {
    // LongLive's two files and the shared ones; no Self-Forcing checkpoint on this hub.
    let server = hub_of(
        LONGLIVE_FILES
            .iter()
            .chain(MODEL_FILES.iter().filter(|s| s.kind != ModelFileKind::Dit)),
    );
    let cache = scratch("hub-longlive");
    let location = hub_location(&server, &cache, None);
    let files = location
        .resolve_for(ModelFamily::LongLive, DecoderKind::Taehv)
        .unwrap();
    let repo = cache.join("models--Efficient-Large-Model--LongLive-1.3B");
    assert!(files.dit.starts_with(&repo), "{}", files.dit.display());
    assert!(files.dit.ends_with("models/longlive_base.pt"));
    let lora = files.lora.clone().expect("the LoRA is resolved");
    assert!(lora.starts_with(&repo) && lora.ends_with("models/lora.pt"));
    assert_eq!(std::fs::read(&lora).unwrap(), content(ModelFileKind::Lora));
    let requests = server.requests();
    assert!(
        !requests.iter().any(|r| r.contains("Self-Forcing")),
        "{requests:?}"
    );
    // Self-Forcing's files are not on this hub: its DiT is reported missing.
    let err = location.resolve(DecoderKind::Taehv).unwrap_err();
    assert!(err.to_string().contains("self_forcing_dmd.pt"), "{err}");
    std::fs::remove_dir_all(&cache).unwrap();
}

#[test]
fn a_self_forcing_directory_used_for_longlive_says_so() {
    let root = scratch("longlive-local");
    local_layout(&root, &WAN_VAE_SET);
    let location = ModelLocation::Local(root.clone());
    let sf = location.resolve(DecoderKind::WanVae).unwrap();
    assert_eq!(sf.lora, None);
    let err = location
        .resolve_for(ModelFamily::LongLive, DecoderKind::WanVae)
        .unwrap_err();
    let WeightsError::Missing { files, .. } = &err else {
        panic!("expected the missing-files error, got {err:?}");
    };
    let kinds: Vec<ModelFileKind> = files.iter().map(|f| f.spec.kind).collect();
    assert_eq!(kinds, [ModelFileKind::Dit, ModelFileKind::Lora]);
    let text = err.to_string();
    for needle in [
        "holds the Self-Forcing checkpoint (checkpoints/self_forcing_dmd.pt), not LongLive's",
        "huggingface-cli download Efficient-Large-Model/LongLive-1.3B models/longlive_base.pt \
         models/lora.pt --local-dir longlive_models",
    ] {
        assert!(text.contains(needle), "'{needle}' not in:\n{text}");
    }
    // With LongLive's files in their layout: both resolve, and the reverse hint appears when
    // only LongLive's are there.
    for spec in dit_files(ModelFamily::LongLive) {
        let path = root.join(spec.local_path());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content(spec.kind)).unwrap();
    }
    let files = location
        .resolve_for(ModelFamily::LongLive, DecoderKind::WanVae)
        .unwrap();
    assert_eq!(
        files.dit,
        root.join("longlive_models/models/longlive_base.pt")
    );
    assert_eq!(
        files.lora,
        Some(root.join("longlive_models/models/lora.pt"))
    );
    std::fs::remove_file(root.join("checkpoints/self_forcing_dmd.pt")).unwrap();
    let err = location
        .resolve(DecoderKind::WanVae)
        .unwrap_err()
        .to_string();
    assert!(err.contains("holds the LongLive checkpoint"), "{err}");
    std::fs::remove_dir_all(&root).unwrap();
}
