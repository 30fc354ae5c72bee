//! End to end on a tiny model directory in the upstream layout, built from the fixtures:
//! prompt -> real umT5 tokenizer -> umT5 encoder -> rollout on the Self-Forcing DiT -> Wan VAE
//! and TAEHV -> MP4 with 1 + 4 (T - 1) frames of the right size, decoded back.

use crate::mp4;
use crate::tiny_models;

use std::path::Path;

use sf_pipeline::{
    CancelToken, DecoderKind, GenerationRequest, ModelConfigs, ModelLocation, Mp4Writer, Pipeline,
    PipelineError,
};
use tiny_models::{HEIGHT, WIDTH, scratch, tiny_model_dir};

fn pipeline(root: &Path, configs: ModelConfigs, decoder: DecoderKind) -> Pipeline {
    Pipeline::builder()
        .device("cpu".parse().unwrap())
        .models(ModelLocation::Local(root.to_path_buf()))
        .configs(configs)
        .decoder(decoder)
        .resolution(HEIGHT, WIDTH)
        .prompt_cache(root.join("prompt-cache"))
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn mp4_frame_count(path: &Path) -> (usize, (u32, u32), usize) {
    let file = std::fs::read(path).unwrap();
    let top = mp4::boxes(&file, 0);
    let moov = top.iter().find(|b| b.name() == "moov").expect("moov");
    let trak = mp4::child(moov, "trak").expect("trak");
    let size = mp4::track_size(&mp4::child(&trak, "tkhd").expect("tkhd"));
    let stbl = mp4::path(&trak, &["mdia", "minf", "stbl"]).expect("stbl");
    let samples = mp4::progressive_samples(&file, &stbl);
    let (sps, pps) = mp4::avc_parameter_sets(&mp4::child(&stbl, "stsd").expect("stsd"));
    let decoded = mp4::decode(&samples, &sps, &pps);
    (samples.len(), size, decoded.len())
}

#[test]
fn prompt_to_mp4_with_both_decoders() {
    let (root, configs) = tiny_model_dir("both");
    let mut p = pipeline(&root, configs, DecoderKind::WanVae);
    let latent_frames = 6;
    let request = GenerationRequest::new("a red fox running through fresh snow")
        .seed(7)
        .latent_frames(latent_frames);
    let expected = 1 + 4 * (latent_frames - 1);
    for decoder in [DecoderKind::WanVae, DecoderKind::Taehv] {
        p.set_decoder(decoder).unwrap();
        let out = root.join(format!("{decoder}.mp4"));
        let mut mp4 = Mp4Writer::create(&out, WIDTH, HEIGHT, 16).unwrap();
        let mut chunks = 0;
        let mut frames = Vec::new();
        for chunk in p.stream(&request).unwrap() {
            let chunk = chunk.unwrap();
            assert_eq!(chunk.first_frame, frames.len());
            assert!(chunk.timings.get("decode") > std::time::Duration::ZERO);
            for f in &chunk.frames {
                assert_eq!((f.width, f.height), (WIDTH, HEIGHT));
                mp4.push(f).unwrap();
            }
            frames.extend(chunk.frames);
            chunks += 1;
        }
        assert_eq!(chunks, latent_frames / 3, "{decoder}");
        assert_eq!(frames.len(), expected, "{decoder}");
        assert!(
            frames
                .iter()
                .any(|f| f.data.iter().any(|&v| v != frames[0].data[0])),
            "{decoder}: the video is a flat colour"
        );
        let summary = mp4.finish().unwrap();
        assert_eq!(summary.frames, expected);
        let (samples, size, decoded) = mp4_frame_count(&out);
        assert_eq!((samples, decoded), (expected, expected), "{decoder}");
        assert_eq!(size, (WIDTH as u32, HEIGHT as u32));
    }
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn same_seed_same_video_and_prompt_cache_hit() {
    let (root, configs) = tiny_model_dir("seed");
    let mut p = pipeline(&root, configs, DecoderKind::Taehv);
    let request = GenerationRequest::new("waves at night")
        .seed(3)
        .latent_frames(3);
    let first = p.generate(&request).unwrap();
    assert!(!first.summary.prompt_cache_hit);
    let again = p.generate(&request).unwrap();
    assert!(
        again.summary.prompt_cache_hit,
        "the second run reads the prompt cache"
    );
    assert_eq!(first.frames, again.frames, "same seed, same frames");
    let other = p.generate(&request.clone().seed(4)).unwrap();
    assert_ne!(first.frames, other.frames, "another seed, another video");
    assert_eq!(first.summary.frames, 9);
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn cancelled_and_invalid_requests_are_errors() {
    let (root, configs) = tiny_model_dir("cancel");
    let mut p = pipeline(&root, configs, DecoderKind::Taehv);
    let cancel = CancelToken::new();
    cancel.cancel();
    let request = GenerationRequest::new("a cat")
        .latent_frames(6)
        .cancel(cancel.clone());
    let mut stream = p.stream(&request).unwrap();
    assert!(matches!(stream.next(), Some(Err(PipelineError::Cancelled))));
    assert!(stream.next().is_none(), "a stream ends after an error");
    drop(stream);
    let e = p.stream(&GenerationRequest::new("   ")).err().unwrap();
    assert!(e.to_string().contains("empty"), "{e}");
    // More latent frames than the global KV cache holds: the error names the rolling window.
    let e = p
        .stream(&GenerationRequest::new("a cat").latent_frames(30))
        .err()
        .unwrap();
    assert!(e.to_string().contains("kv-window"), "{e}");
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn missing_files_are_listed_with_the_fetch_command() {
    let root = scratch("missing");
    let err = Pipeline::builder()
        .device("cpu".parse().unwrap())
        .models(ModelLocation::Local(root.clone()))
        .memory_budget(u64::MAX)
        .build()
        .err()
        .expect("an empty directory cannot build a pipeline");
    let text = err.to_string();
    for needle in [
        "self_forcing_dmd.pt",
        "Wan2.1_VAE.pth",
        "tokenizer.json",
        "huggingface-cli",
    ] {
        assert!(text.contains(needle), "{needle} not in: {text}");
    }
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn switch_prompt_changes_only_the_chunks_after_it() {
    let (root, configs) = tiny_model_dir("switch");
    let mut p = pipeline(&root, configs, DecoderKind::Taehv);
    let request = GenerationRequest::new("waves at night")
        .seed(3)
        .latent_frames(9);
    let plain: Vec<_> = p.stream(&request).unwrap().map(|c| c.unwrap()).collect();
    let mut stream = p.stream(&request).unwrap();
    let first = stream.next().unwrap().unwrap();
    assert!(!stream.prompt_switch().is_pending());
    stream.switch_prompt("a red fox in fresh snow").unwrap();
    assert!(stream.prompt_switch().is_pending());
    let rest: Vec<_> = stream.by_ref().map(|c| c.unwrap()).collect();
    assert_eq!(
        first.frames, plain[0].frames,
        "chunk 0 is yielded before the switch"
    );
    let event = rest[0].switch.clone().expect("the switch fires at chunk 1");
    assert_eq!((event.applied_at_frame, event.chunk), (3, 1));
    assert_eq!(event.recached, Some((0, 3)));
    assert!(rest[1].switch.is_none());
    assert_ne!(
        rest[0].frames, plain[1].frames,
        "chunk 1 follows the new prompt"
    );
    assert!(!stream.prompt_switch().is_pending());
    std::fs::remove_dir_all(&root).ok();
}
