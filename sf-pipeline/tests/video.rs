//! The MP4 and PNG writers: container structure, frame count and timing, decoding back with
//! openh264, what a dropped or killed writer leaves, and clear errors.

use crate::mp4;

use std::path::{Path, PathBuf};

use sf_pipeline::video::{Mp4Writer, PngWriter, RgbFrame, VideoError};

const FPS: u32 = 16;
/// Lower bound on the PSNR of decoded frames against their originals (dB). Observed: 27-35 dB
/// on these small frames, mostly lost in the RGB -> YUV 4:2:0 -> RGB round trip; a broken
/// stream or a wrong frame gives well under 20 dB.
const MIN_PSNR: f64 = 25.0;

/// A fresh, empty scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sf-video-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A smooth pattern drifting by a few pixels per frame, plus a bright square moving across.
fn pattern(t: usize, width: usize, height: usize) -> RgbFrame {
    let mut data = Vec::with_capacity(width * height * 3);
    for y in 0..height {
        for x in 0..width {
            let (xf, yf, tf) = (x as f64, y as f64, t as f64);
            let in_square = (x + 64 - (3 * t) % 64) % 64 < 10 && (y + t) % height < 10;
            let r = 128.0 + 90.0 * ((xf + 3.0 * tf) / 9.0).sin();
            let g = 128.0 + 90.0 * ((yf - 2.0 * tf) / 7.0).cos();
            let b = if in_square { 250.0 } else { 60.0 + (xf + yf) };
            data.extend([r, g, b].map(|v| v.clamp(0.0, 255.0) as u8));
        }
    }
    RgbFrame {
        width,
        height,
        data,
    }
}

fn psnr(a: &[u8], b: &[u8]) -> f64 {
    let mse = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum::<f64>()
        / a.len() as f64;
    10.0 * (255.0f64 * 255.0 / mse.max(1e-10)).log10()
}

/// Checks decoded frames against the originals: count, size, and each frame closest to its own
/// original (so the order and the motion survived) with a PSNR above [`MIN_PSNR`].
fn check_decoded(decoded: &[(usize, usize, Vec<u8>)], originals: &[RgbFrame]) {
    assert_eq!(decoded.len(), originals.len(), "decoded frame count");
    for (i, (w, h, rgb)) in decoded.iter().enumerate() {
        assert_eq!((*w, *h), (originals[i].width, originals[i].height));
        let own = psnr(rgb, &originals[i].data);
        println!("frame {i}: PSNR {own:.1} dB");
        assert!(own > MIN_PSNR, "frame {i}: PSNR {own:.1} dB");
        for j in [i.wrapping_sub(1), i + 1] {
            if let Some(other) = originals.get(j) {
                let theirs = psnr(rgb, &other.data);
                assert!(
                    own > theirs + 1.0,
                    "frame {i} looks like frame {j} ({own:.1} vs {theirs:.1} dB)"
                );
            }
        }
    }
}

/// The progressive (finished) file: structure checks, then its samples decoded.
fn check_progressive(path: &Path, originals: &[RgbFrame]) {
    let file = std::fs::read(path).unwrap();
    let top = mp4::boxes(&file, 0);
    let names: Vec<String> = top.iter().map(mp4::Mp4Box::name).collect();
    assert_eq!(names.first().map(String::as_str), Some("ftyp"), "{names:?}");
    assert!(names.iter().any(|n| n == "mdat"), "{names:?}");
    assert!(
        !names.iter().any(|n| n == "moof"),
        "a finished file is not fragmented: {names:?}"
    );
    let moov = top.iter().find(|b| &b.kind == b"moov").expect("moov");
    let (movie_scale, movie_duration) = mp4::time_header(&mp4::child(moov, "mvhd").expect("mvhd"));
    let frames = originals.len() as u64;
    // The movie timescale may not hold 1/16 s exactly: allow one tick of rounding.
    let movie_error = (movie_duration * u64::from(FPS)).abs_diff(frames * u64::from(movie_scale));
    assert!(
        movie_error <= u64::from(FPS),
        "mvhd duration {movie_duration}/{movie_scale} s"
    );

    let trak = mp4::child(moov, "trak").expect("trak");
    let (width, height) = mp4::track_size(&mp4::child(&trak, "tkhd").expect("tkhd"));
    assert_eq!(
        (width as usize, height as usize),
        (originals[0].width, originals[0].height)
    );
    let (scale, duration) = mp4::time_header(&mp4::path(&trak, &["mdia", "mdhd"]).expect("mdhd"));
    assert_eq!(
        duration * u64::from(FPS),
        frames * u64::from(scale),
        "mdhd: {duration}/{scale} s"
    );

    let stbl = mp4::path(&trak, &["mdia", "minf", "stbl"]).expect("stbl");
    let stsz = mp4::child(&stbl, "stsz").expect("stsz");
    assert_eq!(
        u64::from(mp4::be32(stsz.body, 8)),
        frames,
        "stsz sample count"
    );
    for entry in mp4::table(&mp4::child(&stbl, "stts").expect("stts"), 2) {
        assert_eq!(entry[1] * FPS, scale, "sample duration is not 1/{FPS} s");
    }
    let sync = mp4::table(&mp4::child(&stbl, "stss").expect("stss"), 1);
    assert_eq!(
        sync.first().map(|s| s[0]),
        Some(1),
        "the first sample is a keyframe"
    );

    let (sps, pps) = mp4::avc_parameter_sets(&mp4::child(&stbl, "stsd").expect("stsd"));
    let samples = mp4::progressive_samples(&file, &stbl);
    check_decoded(&mp4::decode(&samples, &sps, &pps), originals);
}

fn write_frames(path: &Path, frames: &[RgbFrame]) -> Mp4Writer {
    let mut writer = Mp4Writer::create(path, frames[0].width, frames[0].height, FPS).unwrap();
    for frame in frames {
        writer.push(frame).unwrap();
    }
    writer
}

#[test]
fn mp4_has_frames_at_16_fps_and_decodes_back() {
    let dir = scratch("finish");
    let path = dir.join("out.mp4");
    // 1 + 4 (T - 1) frames for T = 5 latent frames.
    let frames: Vec<RgbFrame> = (0..17).map(|t| pattern(t, 64, 48)).collect();
    let summary = write_frames(&path, &frames).finish().unwrap();
    assert_eq!(summary.frames, 17);
    assert_eq!(summary.fps, FPS);
    assert_eq!(summary.bytes, std::fs::metadata(&path).unwrap().len());
    assert!((summary.duration_secs() - 17.0 / 16.0).abs() < 1e-9);
    check_progressive(&path, &frames);
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        1,
        "no staging file left"
    );

    // ffprobe is optional: check with it too where it is installed.
    let probe = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=nb_read_frames,r_frame_rate",
            "-of",
            "csv=p=0",
        ])
        .arg(&path)
        .output();
    match probe {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                text.contains("16/1") && text.contains("17"),
                "ffprobe: {text}"
            );
        }
        _ => println!("ffprobe not available: checked with the built-in parser only"),
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_dropped_writer_finalises_every_pushed_frame() {
    let dir = scratch("drop");
    let path = dir.join("cancelled.mp4");
    let frames: Vec<RgbFrame> = (0..9).map(|t| pattern(t, 48, 32)).collect();
    let writer = write_frames(&path, &frames);
    assert_eq!(writer.frames_pushed(), 9);
    drop(writer);
    check_progressive(&path, &frames);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_killed_process_leaves_a_playable_fragmented_file() {
    let dir = scratch("kill");
    let path = dir.join("killed.mp4");
    let frames: Vec<RgbFrame> = (0..9).map(|t| pattern(t, 64, 48)).collect();
    let mut writer = Mp4Writer::create(&path, 64, 48, FPS).unwrap();
    for (i, frame) in frames.iter().enumerate() {
        writer.push(frame).unwrap();
        assert!(
            writer.frames_on_disk() >= i,
            "more than one frame pending after frame {i}"
        );
    }
    let on_disk = writer.frames_on_disk();
    assert_eq!(on_disk, 8);
    // No finish and no drop: what a killed process leaves.
    std::mem::forget(writer);

    let file = std::fs::read(&path).unwrap();
    let top = mp4::boxes(&file, 0);
    assert_eq!(&top[0].kind, b"ftyp");
    let moov = top.iter().find(|b| &b.kind == b"moov").expect("moov");
    assert!(
        mp4::child(moov, "mvex").is_some(),
        "fragmented moov has mvex"
    );
    let trak = mp4::child(moov, "trak").expect("trak");
    assert_eq!(
        mp4::track_size(&mp4::child(&trak, "tkhd").unwrap()),
        (64, 48)
    );
    let (scale, _) = mp4::time_header(&mp4::path(&trak, &["mdia", "mdhd"]).unwrap());
    let stsd = mp4::path(&trak, &["mdia", "minf", "stbl", "stsd"]).unwrap();

    let mut samples = Vec::new();
    let mut time = 0;
    for fragment in mp4::fragments(&file) {
        assert_eq!(fragment.base_decode_time, time, "fragments are contiguous");
        for duration in &fragment.durations {
            assert_eq!(duration * FPS, scale, "sample duration is not 1/{FPS} s");
            time += u64::from(*duration);
        }
        samples.extend(fragment.samples);
    }
    assert_eq!(samples.len(), on_disk);
    let (sps, pps) = mp4::avc_parameter_sets(&stsd);
    check_decoded(&mp4::decode(&samples, &sps, &pps), &frames[..on_disk]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn odd_sizes_and_wrong_frames_are_refused_clearly() {
    let dir = scratch("errors");
    let path = dir.join("odd.mp4");
    for (w, h) in [(63, 48), (64, 47)] {
        let err = Mp4Writer::create(&path, w, h, FPS).unwrap_err();
        assert!(matches!(err, VideoError::OddSize { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains(&format!("{w}x{h}")) && text.contains("even"),
            "{text}"
        );
        assert!(!path.exists(), "no file for a refused size");
    }

    let mut writer = Mp4Writer::create(&path, 64, 48, FPS).unwrap();
    let err = writer.push(&pattern(0, 32, 48)).unwrap_err();
    assert!(err.to_string().contains("32x48"), "{err}");
    let mut short = pattern(0, 64, 48);
    short.data.pop();
    assert!(matches!(
        writer.push(&short),
        Err(VideoError::Frame { index: 0, .. })
    ));
    // The writer is still usable after refusing frames.
    writer.push(&pattern(0, 64, 48)).unwrap();
    writer.push(&pattern(1, 64, 48)).unwrap();
    assert_eq!(writer.finish().unwrap().frames, 2);

    let empty = dir.join("empty.mp4");
    let err = Mp4Writer::create(&empty, 64, 48, FPS)
        .unwrap()
        .finish()
        .unwrap_err();
    assert!(matches!(err, VideoError::NoFrames(_)), "{err:?}");
    assert!(!empty.exists(), "the empty file is removed");
    assert!(
        Mp4Writer::create(&empty, 64, 48, 0).is_err(),
        "fps 0 is refused"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn png_writer_writes_numbered_lossless_frames() {
    let dir = scratch("png").join("frames");
    let frames: Vec<RgbFrame> = (0..3).map(|t| pattern(t, 40, 30)).collect();
    let mut writer = PngWriter::create(&dir).unwrap();
    for frame in &frames {
        writer.push(frame).unwrap();
    }
    assert!(
        writer.push(&pattern(0, 20, 30)).is_err(),
        "size change is refused"
    );
    assert_eq!(writer.finish(), 3);
    for (i, frame) in frames.iter().enumerate() {
        let path = dir.join(format!("frame_{i:05}.png"));
        let decoder =
            png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (40, 30));
        assert_eq!(info.color_type, png::ColorType::Rgb);
        assert_eq!(
            &buf[..info.buffer_size()],
            &frame.data[..],
            "frame {i} differs"
        );
    }
    assert!(!dir.join("frame_00003.png").exists());
    std::fs::remove_dir_all(dir.parent().unwrap()).unwrap();
}
