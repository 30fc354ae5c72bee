//! Live prompt switches through [`PromptEncoder`] on the tiny model directory: the stream never
//! waits for a live encode, a switch encoded on another thread while the DiT runs gives the same
//! frames as one made between chunks (Flex and wgpu), requests that are replaced or come too
//! late are reported, and the low-memory plan frees the encoder after a live encode.

use crate::tiny_models;

use std::path::Path;

use sf_pipeline::{
    DecoderKind, FrameChunk, GenerationRequest, ModelConfigs, ModelLocation, Pipeline,
    PipelineError, PromptEncoder, UnappliedSwitch,
};
use tiny_models::{HEIGHT, WIDTH, tiny_model_dir};

const NEW_PROMPT: &str = "a red fox in fresh snow";

fn build(root: &Path, configs: ModelConfigs, device: &str, low_memory: bool) -> Pipeline {
    Pipeline::builder()
        .device(device.parse().unwrap())
        .models(ModelLocation::Local(root.to_path_buf()))
        .configs(configs)
        .decoder(DecoderKind::Taehv)
        .resolution(HEIGHT, WIDTH)
        .low_memory(low_memory)
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn request(latent_frames: usize) -> GenerationRequest {
    GenerationRequest::new("waves at night")
        .seed(3)
        .latent_frames(latent_frames)
}

#[test]
fn the_handle_can_go_to_any_thread() {
    fn send_sync_static<T: Send + Sync + 'static>() {}
    send_sync_static::<PromptEncoder>();
}

#[test]
fn the_stream_never_waits_for_a_live_encode() {
    let (root, configs) = tiny_model_dir("live-encode-busy");
    let mut p = build(&root, configs, "cpu", false);
    let mut stream = p.stream(&request(9)).unwrap();
    let encoder = stream.prompt_encoder();
    // Holding the text side keeps the other thread's encode from finishing: every chunk below
    // is made while that switch is still being encoded.
    let busy = encoder.text();
    let switcher = {
        let encoder = encoder.clone();
        std::thread::spawn(move || encoder.switch_to(NEW_PROMPT).map_err(Box::new))
    };
    let chunks: Vec<FrameChunk> = stream.by_ref().map(|c| c.unwrap()).collect();
    assert_eq!(chunks.len(), 3, "the stream ran to its end");
    assert!(chunks.iter().all(|c| c.switch.is_none()));
    drop(busy);
    let late = switcher.join().unwrap();
    assert!(
        matches!(
            late.as_ref().map_err(|e| &**e),
            Err(PipelineError::StreamEnded)
        ),
        "{late:?}"
    );
    assert!(encoder.stream_ended());
    let summary = stream.summary();
    assert_eq!(summary.prompts.len(), 1);
    assert_eq!(summary.unapplied_switch, None);
    std::fs::remove_dir_all(&root).ok();
}

/// Switches to [`NEW_PROMPT`] from another thread while the chunks after the first are made
/// (the request is in before the last chunk at the latest), then again between chunks at the
/// chunk where the first one fired: the frames must agree.
fn concurrent_switch_equals_sequential(device: &str) {
    let (root, configs) = tiny_model_dir(&format!("live-encode-{device}"));
    let mut p = build(&root, configs, device, false);
    let frames = 9;
    let mut stream = p.stream(&request(frames)).unwrap();
    let mut live = vec![stream.next().unwrap().unwrap()];
    let encoder = stream.prompt_encoder();
    let text = encoder.clone();
    let switcher = std::thread::spawn(move || encoder.switch_to(NEW_PROMPT).map_err(Box::new));
    let last = frames / 3 - 1;
    let mut switcher = Some(switcher);
    while live.len() < frames / 3 {
        if live.len() == last
            && let Some(s) = switcher.take()
        {
            assert_eq!(s.join().unwrap().unwrap(), None);
        }
        live.push(stream.next().unwrap().unwrap());
    }
    if let Some(s) = switcher {
        assert_eq!(s.join().unwrap().unwrap(), None);
    }
    assert!(stream.next().is_none());
    assert!(text.text().is_loaded(), "all resident: the encoder stays");
    let switched: Vec<&FrameChunk> = live.iter().filter(|c| c.switch.is_some()).collect();
    assert_eq!(switched.len(), 1, "the switch fired once");
    let at = switched[0].index;
    let event = switched[0].switch.clone().unwrap();
    assert_eq!(event.prompt.as_deref(), Some(NEW_PROMPT));
    let summary = stream.summary();
    assert_eq!(summary.prompts.len(), 2);
    assert_eq!(summary.prompts[1].prompt.as_deref(), Some(NEW_PROMPT));
    assert_eq!(summary.prompts[1].latent_frame, 3 * at);
    drop(stream);

    let mut stream = p.stream(&request(frames)).unwrap();
    let mut between = Vec::new();
    for index in 0..frames / 3 {
        if index == at {
            stream.switch_prompt(NEW_PROMPT).unwrap();
        }
        between.push(stream.next().unwrap().unwrap());
    }
    for (a, b) in live.iter().zip(&between) {
        assert_eq!(a.switch, b.switch, "chunk {}", a.index);
        assert!(a.frames == b.frames, "chunk {} differs", a.index);
    }
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn a_switch_encoded_while_the_dit_runs_equals_one_between_chunks_on_flex() {
    concurrent_switch_equals_sequential("cpu");
}

#[cfg(any(feature = "wgpu", feature = "vulkan", feature = "metal"))]
#[test]
fn a_switch_encoded_while_the_dit_runs_equals_one_between_chunks_on_wgpu() {
    if crate::common::wgpu_device().is_some() {
        concurrent_switch_equals_sequential("wgpu");
    }
}

#[test]
fn replaced_and_late_requests_are_reported() {
    let (root, configs) = tiny_model_dir("live-encode-report");
    let mut p = build(&root, configs, "cpu", false);
    let mut stream = p.stream(&request(9)).unwrap();
    let encoder = stream.prompt_encoder();
    stream.next().unwrap().unwrap();
    let empty = encoder.switch_to("  \n").unwrap_err();
    assert!(empty.to_string().contains("empty"), "{empty}");
    assert_eq!(encoder.switch_to("a snowy pass").unwrap(), None);
    assert_eq!(
        encoder.switch_to(NEW_PROMPT).unwrap(),
        Some(UnappliedSwitch {
            prompt: Some("a snowy pass".into())
        })
    );
    assert_eq!(
        encoder.prompt_switch().pending_prompt().as_deref(),
        Some(NEW_PROMPT)
    );
    let chunk = stream.next().unwrap().unwrap();
    assert_eq!(chunk.switch.unwrap().prompt.as_deref(), Some(NEW_PROMPT));
    stream.next().unwrap().unwrap();
    // The last chunk is made, but the stream has not said so yet: the request is taken and
    // then reported as never applied.
    assert_eq!(encoder.switch_to("a calm lake").unwrap(), None);
    assert!(stream.next().is_none());
    let summary = stream.summary();
    assert_eq!(
        summary.unapplied_switch,
        Some(UnappliedSwitch {
            prompt: Some("a calm lake".into())
        })
    );
    let prompts: Vec<_> = summary.prompts.iter().map(|s| s.prompt.clone()).collect();
    assert_eq!(
        prompts,
        [Some("waves at night".to_string()), Some(NEW_PROMPT.into())]
    );
    let ended = encoder.switch_to("a desert").unwrap_err();
    assert!(matches!(ended, PipelineError::StreamEnded), "{ended}");
    assert!(
        ended.to_string().contains("start a new generation"),
        "{ended}"
    );
    drop(stream);
    // A stream dropped before its end takes no more switches either.
    let stream = p.stream(&request(9)).unwrap();
    let encoder = stream.prompt_encoder();
    drop(stream);
    assert!(matches!(
        encoder.switch_to(NEW_PROMPT),
        Err(PipelineError::StreamEnded)
    ));
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn the_low_memory_plan_frees_the_encoder_after_a_live_encode() {
    let (root, configs) = tiny_model_dir("live-encode-low");
    let mut p = build(&root, configs, "cpu", true);
    let mut stream = p.stream(&request(9)).unwrap();
    let encoder = stream.prompt_encoder();
    assert!(!encoder.text().is_loaded(), "freed after the first prompt");
    stream.next().unwrap().unwrap();
    let switcher = {
        let encoder = encoder.clone();
        std::thread::spawn(move || encoder.switch_to(NEW_PROMPT).map_err(Box::new))
    };
    assert_eq!(switcher.join().unwrap().unwrap(), None);
    assert!(!encoder.text().is_loaded(), "freed after the live encode");
    let rest: Vec<FrameChunk> = stream.by_ref().map(|c| c.unwrap()).collect();
    let event = rest[0].switch.clone().expect("fires at the next chunk");
    assert_eq!(event.prompt.as_deref(), Some(NEW_PROMPT));
    std::fs::remove_dir_all(&root).ok();
}
