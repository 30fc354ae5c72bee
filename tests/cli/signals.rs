//! SIGINT during generation (the MP4 is finished with the frames made) and before the first
//! frame (no file).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use super::{Ran, example, files_under, mp4_frames, saved, tiny, with};

/// Starts `generate`, sends SIGINT when a line of stderr (`on_stderr`) or stdout matches, and
/// returns the finished run.
fn interrupt(root: &Path, args: &[String], when: &str, on_stdout: bool) -> Ran {
    let start = Instant::now();
    let mut child = Command::new(example("generate"))
        .args(args)
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let (watched, other) = if on_stdout {
        (
            child.stdout.take().map(box_read),
            child.stderr.take().map(box_read),
        )
    } else {
        (
            child.stderr.take().map(box_read),
            child.stdout.take().map(box_read),
        )
    };
    let collect_other = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut r) = other {
            std::io::Read::read_to_string(&mut r, &mut text).unwrap();
        }
        text
    });
    let when = when.to_string();
    let mut seen = String::new();
    let mut sent = false;
    for line in BufReader::new(watched.unwrap()).lines() {
        let line = line.unwrap();
        if !sent && line.contains(&when) {
            let kill = Command::new("kill").args(["-INT", &pid]).status().unwrap();
            assert!(kill.success());
            sent = true;
        }
        seen.push_str(&line);
        seen.push('\n');
    }
    let status = child.wait().unwrap();
    let other = collect_other.join().unwrap();
    assert!(sent, "'{when}' never appeared:\n{seen}\n{other}");
    let (stdout, stderr) = if on_stdout {
        (seen, other)
    } else {
        (other, seen)
    };
    Ran {
        code: status.code(),
        stdout,
        stderr,
        took: start.elapsed(),
    }
}

fn box_read(r: impl std::io::Read + Send + 'static) -> Box<dyn std::io::Read + Send> {
    Box::new(r)
}

#[test]
fn ctrl_c_during_generation_finishes_the_mp4_with_the_frames_made() {
    let (root, flags) = tiny("cli-sigint");
    // 40 chunks: far more than are made before the signal lands.
    let args = [
        "--prompt",
        "a fox",
        "--seed",
        "2",
        "--frames",
        "120",
        "--kv-window",
        "9",
        "--output",
        "fox.mp4",
    ];
    let ran = interrupt(&root, &with(&flags, &args), "chunk 1:", false);
    assert_eq!(ran.code, Some(130), "{}", ran.all());
    let said = ran.stderr.split_whitespace().collect::<Vec<_>>().join(" ");
    let frames: usize = said
        .split("interrupted: the ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no frame count in:\n{}", ran.all()));
    assert!(said.contains("frames made are in fox.mp4"), "{}", ran.all());
    assert!((9..1 + 4 * 119).contains(&frames), "{frames}");
    assert_eq!(saved(&ran.stdout), vec![(PathBuf::from("fox.mp4"), frames)]);
    assert_eq!(mp4_frames(&root.join("fox.mp4")), frames);
    let stray: Vec<_> = files_under(&root)
        .into_iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(".fox"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn ctrl_c_before_the_first_frame_leaves_no_file() {
    let (root, flags) = tiny("cli-sigint-early");
    let args = [
        "--prompt",
        "a fox",
        "--frames",
        "3",
        "--output",
        "out/fox.mp4",
    ];
    let ran = interrupt(&root, &with(&flags, &args), "loading models", true);
    assert_eq!(ran.code, Some(130), "{}", ran.all());
    assert!(
        ran.stderr.contains("nothing was made") || ran.stderr.contains("nothing was written"),
        "{}",
        ran.all()
    );
    assert!(
        !root.join("out").exists(),
        "{:?}\n{}",
        files_under(&root),
        ran.all()
    );
    assert!(!root.join("fox.mp4").exists());
    std::fs::remove_dir_all(&root).ok();
}
