//! `--model longlive`: LongLive's base checkpoint with its LoRA merged and its rollout defaults
//! (12-frame KV window, 3-frame sink), `--kv-window` over them, and the combinations refused
//! before any weight is read.

use std::path::PathBuf;

use crate::tiny_models::add_longlive;

use super::{mp4_frames, run_in, saved, tiny, with};

/// [`tiny`]'s directory and flags, with LongLive's files as well.
fn tiny_longlive(name: &str) -> (PathBuf, Vec<String>) {
    let (root, flags) = tiny(name);
    add_longlive(&root);
    (root, flags)
}

#[test]
fn longlive_runs_with_its_window_and_sink_and_the_flag_overrides_them() {
    let (root, flags) = tiny_longlive("cli-longlive");
    let args = [
        "--model", "longlive", "--prompt", "a fox", "--seed", "3", "--frames", "15",
    ];
    let ran = run_in(&root, "generate", &with(&flags, &args));
    assert_eq!(ran.code, Some(0), "{}", ran.all());
    assert!(
        ran.stdout
            .contains("longlive (KV window 12 latent frames, sink 3)"),
        "{}",
        ran.all()
    );
    let videos = saved(&ran.stdout);
    assert_eq!(videos.len(), 1, "{}", ran.all());
    assert_eq!(videos[0].1, 57);
    assert_eq!(mp4_frames(&root.join(&videos[0].0)), 57);

    let args = [
        "--model",
        "longlive",
        "--kv-window",
        "6,1",
        "--prompt",
        "a fox",
        "--frames",
        "3",
    ];
    let ran = run_in(&root, "generate", &with(&flags, &args));
    assert_eq!(ran.code, Some(0), "{}", ran.all());
    assert!(
        ran.stdout
            .contains("longlive (KV window 6 latent frames, sink 1)"),
        "{}",
        ran.all()
    );
    let ran = run_in(
        &root,
        "generate",
        &with(&flags, &["--prompt", "a fox", "--frames", "3"]),
    );
    assert_eq!(ran.code, Some(0), "{}", ran.all());
    assert!(
        ran.stdout.contains("self-forcing (global KV cache"),
        "{}",
        ran.all()
    );
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn wrong_family_combinations_are_refused_before_loading() {
    // A Self-Forcing directory: the missing LongLive files, the hint and the command.
    let (root, flags) = tiny("cli-longlive-sf");
    let args = ["--model", "longlive", "--prompt", "a fox", "--frames", "3"];
    let ran = run_in(&root, "generate", &with(&flags, &args));
    assert_eq!(ran.code, Some(1), "{}", ran.all());
    for said in [
        "longlive_models/models/longlive_base.pt",
        "longlive_models/models/lora.pt",
        "holds the Self-Forcing checkpoint",
        "huggingface-cli download Efficient-Large-Model/LongLive-1.3B",
    ] {
        assert!(ran.stderr.contains(said), "{said}:\n{}", ran.all());
    }
    assert!(saved(&ran.stdout).is_empty());

    let ran = run_in(
        &root,
        "generate",
        &with(&flags, &["--model", "wan", "--prompt", "x"]),
    );
    assert_eq!(ran.code, Some(2), "{}", ran.all());
    assert!(
        ran.stderr.contains("use self-forcing or longlive"),
        "{}",
        ran.all()
    );
    let args = ["--lora-alpha", "8", "--prompt", "x"];
    let ran = run_in(&root, "generate", &with(&flags, &args));
    assert_eq!(ran.code, Some(2), "{}", ran.all());
    assert!(
        ran.stderr
            .contains("--lora-alpha: the self-forcing model merges no LoRA"),
        "{}",
        ran.all()
    );
    let args = ["--model", "longlive", "--lora-alpha", "-1", "--prompt", "x"];
    let ran = run_in(&root, "generate", &with(&flags, &args));
    assert_eq!(ran.code, Some(2), "{}", ran.all());
    std::fs::remove_dir_all(&root).ok();

    // A LoRA that is not one: refused with the adapters' report, before the text encoder loads.
    let (root, flags) = tiny_longlive("cli-longlive-bad-lora");
    let lora = root.join("longlive_models/models/lora.pt");
    std::fs::copy(root.join("checkpoints/taew2_1.pth"), &lora).unwrap();
    let args = ["--model", "longlive", "--prompt", "a fox", "--frames", "3"];
    let ran = run_in(&root, "generate", &with(&flags, &args));
    assert_eq!(ran.code, Some(1), "{}", ran.all());
    // The message is wrapped to the terminal's width, so compare it with its words rejoined.
    let words = ran.stderr.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(words.contains("does not fit the DiT"), "{}", ran.all());
    assert!(words.contains("missing (40)"), "{}", ran.all());
    assert!(saved(&ran.stdout).is_empty());
    std::fs::remove_dir_all(&root).ok();
}
