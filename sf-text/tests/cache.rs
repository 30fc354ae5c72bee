//! The prompt-embedding cache: miss, hit, invalidation when the encoder changes, and corrupted
//! files ignored (recomputed) without a panic.

use crate::common;

use burn::tensor::{Device, Tensor};
use sf_testkit::{Fixture, to_f32s};
use sf_text::{Dtype, EncoderIdentity, Precision, PromptCache, Tokenized, UmT5Encoder};

/// Row 0 of `t5_tiny_io` as a tokenized prompt.
fn prompt() -> Tokenized {
    let fx = Fixture::open(common::fixture("t5_tiny_io.safetensors")).unwrap();
    let l = fx.shape("ids").unwrap()[1];
    let ids = &fx.i64s("ids").unwrap()[..l];
    let mask = &fx.i64s("mask").unwrap()[..l];
    Tokenized {
        cleaned: "a cat".into(),
        ids: ids.iter().map(|&i| i as u32).collect(),
        mask: mask.iter().map(|&m| m as u8).collect(),
        len: mask.iter().filter(|&&m| m != 0).count(),
        truncated_from: None,
    }
}

#[test]
fn hit_miss_invalidation_and_corruption() {
    let dir = common::temp_dir("cache");
    let weights = dir.join("t5.safetensors");
    std::fs::copy(common::fixture("t5_tiny.safetensors"), &weights).unwrap();
    let config = sf_testkit::configs::umt5(&weights).unwrap();
    let device = Device::flex();
    let precision = Precision::uniform(Dtype::F32);
    let encoder = UmT5Encoder::load(&weights, &config, &device, precision).unwrap();
    let tokenized = prompt();
    let encode = || -> Result<Tensor<2>, sf_text::TextError> {
        Ok(encoder
            .encode(std::slice::from_ref(&tokenized))?
            .squeeze_dim(0))
    };

    let cache = PromptCache::new(dir.join("cache")).unwrap();
    let identity = EncoderIdentity::of_file(&weights).unwrap();
    let text_len = tokenized.ids.len();
    let key = cache.key(&tokenized.cleaned, text_len, &identity, Dtype::F32);
    assert!(cache.get(&key, &device).is_none(), "empty cache");
    let (first, hit) = cache.get_or_insert_with(&key, &device, encode).unwrap();
    assert!(!hit);
    let (second, hit) = cache
        .get_or_insert_with(&key, &device, || panic!("must hit"))
        .unwrap();
    assert!(hit);
    assert_eq!(second.dims(), [text_len, config.dim]);
    assert_eq!(to_f32s(first.clone()), to_f32s(second));

    // Every part of the key matters.
    for other in [
        cache.key("a dog", text_len, &identity, Dtype::F32),
        cache.key(&tokenized.cleaned, text_len + 1, &identity, Dtype::F32),
        cache.key(&tokenized.cleaned, text_len, &identity, Dtype::Bf16),
        cache.key(
            &tokenized.cleaned,
            text_len,
            &EncoderIdentity::named("other"),
            Dtype::F32,
        ),
    ] {
        assert_ne!(other.hash, key.hash);
        assert!(cache.get(&other, &device).is_none());
    }

    // A rewritten checkpoint is another encoder: its identity and key change.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes).unwrap();
    let changed = EncoderIdentity::of_file(&weights).unwrap();
    assert_ne!(changed, identity);
    let new_key = cache.key(&tokenized.cleaned, text_len, &changed, Dtype::F32);
    assert!(cache.get(&new_key, &device).is_none());

    // Corrupted files are misses, then repaired by the next insert.
    let path = cache.path(&key);
    let good = std::fs::read(&path).unwrap();
    for corrupt in [
        good[..good.len() / 2].to_vec(),
        b"garbage".to_vec(),
        Vec::new(),
        {
            let mut flipped = good.clone();
            flipped[9] ^= 0xFF;
            flipped
        },
    ] {
        std::fs::write(&path, &corrupt).unwrap();
        assert!(cache.get(&key, &device).is_none());
        let (again, hit) = cache.get_or_insert_with(&key, &device, encode).unwrap();
        assert!(!hit);
        assert_eq!(to_f32s(again), to_f32s(first.clone()));
        assert!(cache.get(&key, &device).is_some());
    }
    // Another key's file under this key's name is not served.
    std::fs::copy(&path, cache.path(&new_key)).unwrap();
    assert!(cache.get(&new_key, &device).is_none());
    std::fs::remove_dir_all(&dir).ok();
}
