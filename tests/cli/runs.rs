//! Whole runs outside a terminal: a batch with PNG folders, free names on a second run, a closed
//! stdout; 80 columns and no encoder output.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::{assert_console_fits, example, files_under, mp4_frames, run_in, saved, tiny, with};

#[test]
fn a_batch_writes_one_video_and_png_folder_each_and_never_replaces_one() {
    let (root, flags) = tiny("cli-batch");
    std::fs::write(root.join("two.txt"), b"a red fox\n\nwaves at night\n").unwrap();
    let args = [
        "--prompts",
        "two.txt",
        "--seed",
        "5",
        "--frames",
        "3",
        "--png-dir",
        "frames",
    ];
    let first = run_in(&root, "generate", &with(&flags, &args));
    assert_eq!(first.code, Some(0), "{}", first.all());
    assert_console_fits(&first);
    let videos = saved(&first.stdout);
    let expected = ["videos/a_red_fox-5.mp4", "videos/waves_at_night-5.mp4"];
    assert_eq!(
        videos,
        expected.map(|p| (PathBuf::from(p), 9)).to_vec(),
        "{}",
        first.all()
    );
    for (path, frames) in &videos {
        assert_eq!(mp4_frames(&root.join(path)), *frames);
        let stem = path.file_stem().unwrap();
        let pngs = files_under(&root.join("frames").join(stem));
        assert_eq!(pngs.len(), 9, "{pngs:?}");
    }
    let kept: Vec<Vec<u8>> = videos
        .iter()
        .map(|(p, _)| std::fs::read(root.join(p)).unwrap())
        .collect();

    // The same command again: the default names are taken, so free ones are used (and said).
    let again = run_in(&root, "generate", &with(&flags, &args));
    assert_eq!(again.code, Some(0), "{}", again.all());
    assert_console_fits(&again);
    let renamed = saved(&again.stdout);
    let expected = ["videos/a_red_fox-5-1.mp4", "videos/waves_at_night-5-1.mp4"];
    assert_eq!(
        renamed,
        expected.map(|p| (PathBuf::from(p), 9)).to_vec(),
        "{}",
        again.all()
    );
    let said = again
        .stderr
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        said.contains("videos/a_red_fox-5.mp4 is taken"),
        "{}",
        again.all()
    );
    for ((path, _), bytes) in videos.iter().zip(&kept) {
        assert_eq!(&std::fs::read(root.join(path)).unwrap(), bytes, "replaced");
    }
    for (path, _) in &renamed {
        assert_eq!(
            files_under(&root.join("frames").join(path.file_stem().unwrap())).len(),
            9
        );
    }
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn a_closed_stdout_does_not_stop_the_run() {
    let (root, flags) = tiny("cli-pipe");
    let args = [
        "--prompt", "a fox", "--seed", "1", "--frames", "3", "--output", "fox.mp4",
    ];
    let mut child = Command::new(example("generate"))
        .args(with(&flags, &args))
        .current_dir(&root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(mp4_frames(&root.join("fox.mp4")), 9);
    std::fs::remove_dir_all(&root).ok();
}
