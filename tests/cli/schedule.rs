//! `--prompt-schedule` and `--endless`: a scheduled switch (the MP4 has every frame, the
//! summary says where the prompt started), malformed files refused before loading with the
//! line number, `--endless` stopped by Ctrl-C keeping every frame made, and `--endless`
//! without a rolling window refused.

use std::path::PathBuf;

use super::signals::interrupt;
use super::{mp4_frames, run_in, saved, tiny, with};

#[test]
fn a_schedule_switches_the_prompt_and_the_summary_says_where() {
    let (root, flags) = tiny("cli-schedule");
    std::fs::write(
        root.join("schedule.tsv"),
        "# the first prompt, then waves from latent frame 4\n0\ta red fox\n\n4\twaves at night\n",
    )
    .unwrap();
    let args = [
        "--prompt-schedule",
        "schedule.tsv",
        "--seed",
        "3",
        "--frames",
        "9",
        "--output",
        "fox.mp4",
    ];
    let ran = run_in(&root, "generate", &with(&flags, &args));
    assert_eq!(ran.code, Some(0), "{}", ran.all());
    assert_eq!(saved(&ran.stdout), vec![(PathBuf::from("fox.mp4"), 33)]);
    assert_eq!(mp4_frames(&root.join("fox.mp4")), 33);
    let said = ran.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    for line in [
        "prompt 1: from latent frame 0 (video frame 0): a red fox",
        "prompt 2: from latent frame 6 (video frame 21, scheduled at 4): waves at night",
    ] {
        assert!(said.contains(line), "{line}\n{}", ran.all());
    }
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn malformed_schedules_are_refused_with_the_line_before_loading() {
    let (root, flags) = tiny("cli-schedule-bad");
    // A DiT that cannot load: a run that got past the checks would fail with exit code 1.
    std::fs::write(root.join("checkpoints/self_forcing_dmd.pt"), b"not a model").unwrap();
    let cases: [(&str, &[&str], &str); 8] = [
        (
            "# c\n3 waves\n",
            &["--prompt", "a fox"],
            "line 2: expected LATENT_FRAME<TAB>PROMPT",
        ),
        (
            "x\twaves\n",
            &["--prompt", "a fox"],
            "line 1: 'x' is not a latent frame",
        ),
        (
            "\n3\t  \n",
            &["--prompt", "a fox"],
            "line 2: the prompt for latent frame 3 is empty",
        ),
        (
            "6\ta\n3\tb\n",
            &["--prompt", "a fox"],
            "line 2: latent frame 3 does not come after",
        ),
        (
            "3\ta\n40\tb\n",
            &["--prompt", "a fox"],
            "line 2: the prompt switch at latent frame 40 never fires",
        ),
        (
            "0\ta fox\n3\tb\n",
            &["--prompt", "a fox"],
            "and so does --prompt",
        ),
        ("3\tb\n", &[], "no first prompt"),
        ("# nothing\n", &["--prompt", "a fox"], "holds no prompt"),
    ];
    for (text, more, said) in cases {
        std::fs::write(root.join("s.tsv"), text).unwrap();
        let mut args = vec!["--prompt-schedule", "s.tsv", "--frames", "9"];
        args.extend_from_slice(more);
        let ran = run_in(&root, "generate", &with(&flags, &args));
        assert_eq!(ran.code, Some(2), "{text:?}\n{}", ran.all());
        let err = ran.stderr.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(err.contains("--prompt-schedule s.tsv"), "{}", ran.all());
        assert!(err.contains(said), "{said}\n{}", ran.all());
        assert!(!ran.stdout.contains("loading models"), "{}", ran.all());
    }
    assert!(!root.join("videos").exists());
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn endless_needs_a_rolling_window_and_ctrl_c_keeps_every_frame() {
    let (root, flags) = tiny("cli-endless");
    let args = ["--prompt", "a fox", "--endless", "--output", "fox.mp4"];
    let ran = run_in(&root, "generate", &with(&flags, &args));
    assert_eq!(ran.code, Some(2), "{}", ran.all());
    let err = ran.stderr.split_whitespace().collect::<Vec<_>>().join(" ");
    for said in [
        "--endless",
        "rolling KV window",
        "--kv-window",
        "--model longlive",
    ] {
        assert!(err.contains(said), "{said}\n{}", ran.all());
    }
    assert!(!ran.stdout.contains("loading models"), "{}", ran.all());

    let args = [
        "--prompt",
        "a fox",
        "--seed",
        "2",
        "--endless",
        "--kv-window",
        "9,3",
        "--output",
        "fox.mp4",
    ];
    let ran = interrupt(&root, &with(&flags, &args), "chunk 4:", false, 1);
    assert_eq!(ran.code, Some(130), "{}", ran.all());
    let chunks = ran
        .stderr
        .lines()
        .filter(|l| l.starts_with("chunk "))
        .count();
    assert!(chunks >= 4, "{}", ran.all());
    // Every chunk made is in the file: 9 frames, then 12 a chunk.
    let frames = 9 + 12 * (chunks - 1);
    assert_eq!(saved(&ran.stdout), vec![(PathBuf::from("fox.mp4"), frames)]);
    assert_eq!(mp4_frames(&root.join("fox.mp4")), frames);
    assert!(
        ran.stderr
            .contains(&format!("chunk {chunks}: {frames} frames")),
        "{}",
        ran.all()
    );
    std::fs::remove_dir_all(&root).ok();
}
