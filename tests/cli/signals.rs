//! SIGINT during generation (the MP4 is finished with the frames made; a batch stops), twice
//! (exit at once, the file at the path plays), and before the first frame (no file).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use super::{Ran, example, files_under, mp4_frames, saved, tiny, with};

/// Starts `generate`, sends SIGINT `times` times when a line of stderr (or stdout, with
/// `on_stdout`) contains `when`, and returns the finished run.
pub(super) fn interrupt(
    root: &Path,
    args: &[String],
    when: &str,
    on_stdout: bool,
    times: usize,
) -> Ran {
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
            for n in 0..times {
                let kill = Command::new("kill").args(["-INT", &pid]).status().unwrap();
                // A later signal may find the process gone (it exited on an earlier one).
                assert!(kill.success() || n > 0);
            }
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
    let ran = interrupt(&root, &with(&flags, &args), "chunk 1:", false, 1);
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
    let ran = interrupt(&root, &with(&flags, &args), "loading models", true, 1);
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

#[test]
fn ctrl_c_stops_a_batch_after_the_video_in_progress() {
    let (root, flags) = tiny("cli-sigint-batch");
    std::fs::write(root.join("three.txt"), b"a fox\nwaves\na city at night\n").unwrap();
    let args = [
        "--prompts",
        "three.txt",
        "--seed",
        "4",
        "--frames",
        "120",
        "--kv-window",
        "9",
    ];
    let ran = interrupt(&root, &with(&flags, &args), "chunk 1:", false, 1);
    assert_eq!(ran.code, Some(130), "{}", ran.all());
    let said = ran.stderr.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        said.contains("the batch stopped (2 videos not made)"),
        "{}",
        ran.all()
    );
    let videos = saved(&ran.stdout);
    assert_eq!(videos.len(), 1, "{}", ran.all());
    assert_eq!(videos[0].0, PathBuf::from("videos/a_fox-4.mp4"));
    assert_eq!(mp4_frames(&root.join(&videos[0].0)), videos[0].1);
    let mp4s: Vec<_> = files_under(&root.join("videos"));
    assert_eq!(mp4s, vec![root.join("videos/a_fox-4.mp4")], "{}", ran.all());
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn a_second_ctrl_c_quits_at_once_and_the_file_at_the_path_plays() {
    let (root, flags) = tiny("cli-sigint-twice");
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
    let ran = interrupt(&root, &with(&flags, &args), "chunk 1:", false, 2);
    assert_eq!(ran.code, Some(130), "{}", ran.all());
    // Quit during the run (fragmented file) or after finishing it (progressive): both play
    // with at least the first chunk's frames but the last one.
    let frames = playable_frames(&root.join("fox.mp4"));
    assert!(frames >= 8, "{frames} frames\n{}", ran.all());
    std::fs::remove_dir_all(&root).ok();
}

/// Frames of an MP4 in either form (fragmented while written, progressive once finished),
/// decoded back.
fn playable_frames(path: &Path) -> usize {
    let file = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let fragments = crate::mp4::fragments(&file);
    if fragments.is_empty() {
        return mp4_frames(path);
    }
    let top = crate::mp4::boxes(&file, 0);
    let moov = top.iter().find(|b| b.name() == "moov").expect("moov");
    let trak = crate::mp4::child(moov, "trak").expect("trak");
    let stbl = crate::mp4::path(&trak, &["mdia", "minf", "stbl"]).expect("stbl");
    let (sps, pps) =
        crate::mp4::avc_parameter_sets(&crate::mp4::child(&stbl, "stsd").expect("stsd"));
    let samples: Vec<&[u8]> = fragments.iter().flat_map(|f| f.samples.clone()).collect();
    let decoded = crate::mp4::decode(&samples, &sps, &pps);
    assert_eq!(decoded.len(), samples.len());
    decoded.len()
}
