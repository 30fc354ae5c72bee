//! `--help`, every check made before loading (each fails fast, names its flag and keeps the
//! earlier video), and a load that fails on a truncated weight file.

use std::path::Path;
use std::time::Duration;

use super::{files_under, run_in, strings, tiny, with};

#[test]
fn help_lists_every_flag_and_the_random_default_seed() {
    let dir = std::env::temp_dir();
    let generate = run_in(&dir, "generate", &strings(&["--help"]));
    assert_eq!(generate.code, Some(0), "{}", generate.all());
    let model_flags = [
        "--model <NAME>",
        "--lora-alpha",
        "--frames",
        "--decoder",
        "--device",
        "--precision",
        "--kv-window",
        "--low-memory",
        "--height",
        "--width",
        "--fps",
        "--models",
        "--hub-endpoint",
        "--model-config",
        "--prompt-cache",
    ];
    let own = [
        "--prompt ",
        "--prompts",
        "--extended-prompts",
        "--seed",
        "--shift",
        "--output",
        "--png-dir",
        "--overwrite",
        "--videos",
    ];
    for flag in model_flags.iter().chain(&own) {
        assert!(
            generate.stdout.contains(flag),
            "{flag}:\n{}",
            generate.stdout
        );
    }
    let seed = generate
        .stdout
        .lines()
        .skip_while(|l| !l.contains("--seed"))
        .take(2)
        .collect::<String>();
    assert!(seed.contains("random"), "{seed}");
    assert!(!seed.contains("default: 0"), "{seed}");

    let stream = run_in(&dir, "stream", &strings(&["--help"]));
    assert_eq!(stream.code, Some(0), "{}", stream.all());
    for flag in model_flags
        .iter()
        .chain(&["--prompt ", "--port", "--videos"])
    {
        assert!(stream.stdout.contains(flag), "{flag}:\n{}", stream.stdout);
    }
    // `-1` is a seed (random), not a flag: the run gets as far as the prompt check.
    let negative = run_in(
        &dir,
        "generate",
        &strings(&["--seed", "-1", "--prompt", " "]),
    );
    assert_eq!(negative.code, Some(2), "{}", negative.all());
    assert!(
        negative.stderr.contains("--prompt: the prompt is empty"),
        "{}",
        negative.all()
    );
    let unknown = run_in(&dir, "generate", &strings(&["--prompt", "x", "--bogus"]));
    assert_eq!(unknown.code, Some(2), "{}", unknown.all());
    assert!(unknown.stderr.contains("--bogus"), "{}", unknown.all());
}

#[test]
fn every_check_fires_before_loading_and_keeps_the_earlier_video() {
    let (root, flags) = tiny("cli-preflight");
    // Garbage weights: a run that got as far as loading would fail on them instead.
    for file in files_under(&root) {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        if [".pt", ".pth", ".safetensors"]
            .iter()
            .any(|e| name.ends_with(e))
        {
            std::fs::write(&file, b"these are not weights").unwrap();
        }
    }
    let old = root.join("old.mp4");
    std::fs::write(&old, b"an earlier video").unwrap();
    std::fs::write(root.join("empty.txt"), b"").unwrap();
    std::fs::write(root.join("blank.txt"), b"\n   \n\t\n").unwrap();
    std::fs::write(root.join("two.txt"), b"a fox\nwaves\n").unwrap();
    std::fs::create_dir_all(root.join("a-dir.mp4")).unwrap();
    std::os::unix::fs::symlink(&old, root.join("link.mp4")).unwrap();
    std::fs::create_dir_all(root.join("frames")).unwrap();
    std::fs::write(root.join("frames/frame_00000.png"), b"an earlier frame").unwrap();
    std::fs::write(root.join("not-a-dir"), b"a file").unwrap();

    let keep = ["--output", "old.mp4", "--overwrite"];
    let cases: Vec<(Vec<&str>, &[&str])> = vec![
        (vec!["--prompt", "   "], &["--prompt", "empty"]),
        (vec!["--prompts", "empty.txt"], &["--prompts", "no prompt"]),
        (vec!["--prompts", "blank.txt"], &["--prompts", "no prompt"]),
        (
            vec!["--prompts", "missing.txt"],
            &["--prompts", "missing.txt"],
        ),
        (
            vec!["--prompts", "two.txt", "--extended-prompts", "blank.txt"],
            &["--extended-prompts"],
        ),
        (
            vec!["--prompt", "a fox", "--frames", "24"],
            &["--frames 24", "--kv-window"],
        ),
        (
            vec!["--prompt", "a fox", "--frames", "4"],
            &["--frames 4", "multiple of 3"],
        ),
        (vec!["--prompt", "a fox", "--shift", "0"], &["--shift"]),
        (
            vec!["--prompt", "a fox", "--kv-window", "3,3"],
            &["--kv-window", "sink"],
        ),
        (
            vec!["--prompt", "a fox", "--height", "40"],
            &["--height 40", "16"],
        ),
        (
            vec!["--prompt", "a fox", "--device", "cuda:7"],
            &["--device", "cuda"],
        ),
        (
            vec!["--prompt", "a fox", "--precision", "dit=f12"],
            &["--precision"],
        ),
        (
            vec!["--prompt", "a fox", "--model-config", "none.json"],
            &["--model-config"],
        ),
        (
            vec!["--prompt", "a fox", "--output", "a-dir.mp4"],
            &["--output", "directory"],
        ),
        (
            vec!["--prompt", "a fox", "--output", "link.mp4"],
            &["--output", "symbolic link"],
        ),
        (
            vec!["--prompt", "a fox", "--output", "old.mp4"],
            &["already exists", "--overwrite"],
        ),
        (
            vec!["--prompt", "a fox", "--output", "not-a-dir/v.mp4"],
            &["--output", "not-a-dir"],
        ),
        (
            vec![
                "--prompt",
                "a fox",
                "--output",
                "new.mp4",
                "--png-dir",
                "frames",
            ],
            &["--png-dir", "frames", "already exists"],
        ),
    ];
    for (args, needles) in cases {
        // Unless a case is about the output, `old.mp4` is at stake (and may be replaced).
        let mut case = args.clone();
        if !args.contains(&"--output") {
            case.extend(keep);
        }
        let text = refused_before_loading(&root, "generate", &with(&flags, &case), needles);
        assert!(!text.contains("not weights"), "{args:?}: {text}");
        assert_eq!(
            std::fs::read(&old).unwrap(),
            b"an earlier video",
            "{args:?}"
        );
        assert_eq!(
            std::fs::read(root.join("frames/frame_00000.png")).unwrap(),
            b"an earlier frame"
        );
        assert!(!root.join("videos").exists(), "{args:?} created videos/");
    }

    // `stream` refuses a default request that cannot run, before loading.
    for (args, needles) in [
        (vec!["--frames", "30"], vec!["--frames 30", "--kv-window"]),
        (vec!["--prompt", " "], vec!["--prompt"]),
        (
            vec!["--videos", "not-a-dir"],
            vec!["--videos", "not a directory"],
        ),
        (vec!["--device", "cuda:7"], vec!["--device"]),
    ] {
        refused_before_loading(&root, "stream", &with(&flags, &args), &needles);
    }
    std::fs::remove_dir_all(&root).ok();
}

/// Runs `example` with `args` and asserts that it exits 2 within 3 s, before loading any model,
/// with every needle in its stderr; returns the stderr with its whitespace collapsed.
fn refused_before_loading(root: &Path, example: &str, args: &[String], needles: &[&str]) -> String {
    let ran = run_in(root, example, args);
    let text = ran.stderr.split_whitespace().collect::<Vec<_>>().join(" ");
    assert_eq!(ran.code, Some(2), "{args:?}\n{}", ran.all());
    for needle in needles {
        assert!(
            text.contains(needle),
            "{args:?}: '{needle}' not in\n{}",
            ran.all()
        );
    }
    assert!(
        !ran.stdout.contains("loading models"),
        "{args:?}\n{}",
        ran.all()
    );
    assert!(
        ran.took < Duration::from_secs(3),
        "{args:?} took {:?}",
        ran.took
    );
    text
}

#[test]
fn a_truncated_weight_file_fails_the_load_and_keeps_the_earlier_video() {
    let (root, flags) = tiny("cli-truncated");
    let dit = root.join("checkpoints/self_forcing_dmd.pt");
    let bytes = std::fs::read(&dit).unwrap();
    std::fs::write(&dit, &bytes[..bytes.len() / 2]).unwrap();
    std::fs::write(root.join("old.mp4"), b"an earlier video").unwrap();
    let args = [
        "--prompt",
        "a fox",
        "--frames",
        "3",
        "--output",
        "old.mp4",
        "--overwrite",
    ];
    let ran = run_in(&root, "generate", &with(&flags, &args));
    assert_eq!(ran.code, Some(1), "{}", ran.all());
    assert!(ran.stdout.contains("loading models"), "{}", ran.all());
    assert!(ran.stderr.contains("self_forcing_dmd.pt"), "{}", ran.all());
    assert_eq!(
        std::fs::read(root.join("old.mp4")).unwrap(),
        b"an earlier video"
    );
    std::fs::remove_dir_all(&root).ok();
}
