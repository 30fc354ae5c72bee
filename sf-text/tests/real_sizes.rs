//! umT5-XXL's token embedding at its real size, `[256384, 4096]`, on wgpu (lavapipe in CI):
//! in f16 (1.96 GiB) it is one buffer, in f32 (3.91 GiB) it exceeds wgpu's 2 GiB − 1 per buffer
//! on Vulkan and is held as row blocks ([`RowBlocks`], what [`sf_text::UmT5Encoder::load`]
//! does). Rows on both sides of the block boundary and at the end of the table come back
//! exactly. See `docs/gpu.md`, "Real sizes on wgpu".

use std::time::Instant;

use burn::tensor::{Device, FloatDType, Tensor, TensorData};
use sf_device::{RowBlocks, max_buffer_bytes, system_memory};

use crate::common::wgpu_device;

const VOCAB: usize = 256_384;
const DIM: usize = 4096;

/// Row `r`, column `c`: six bits of `r` (which six depends on `c % 3`) plus `64 · (c % 17)`,
/// an integer below 2048, so exact in f16; any three adjacent columns identify the row.
fn value(r: usize, c: usize) -> f32 {
    (((r >> ((c % 3) * 6)) & 63) + 64 * (c % 17)) as f32
}

fn table(rows: usize, width: usize) -> Tensor<2> {
    let shift: Vec<usize> = (0..width).map(|c| (c % 3) * 6).collect();
    let base: Vec<f32> = (0..width).map(|c| (64 * (c % 17)) as f32).collect();
    let mut data = Vec::with_capacity(rows * width);
    for r in 0..rows {
        data.extend((0..width).map(|c| ((r >> shift[c]) & 63) as f32 + base[c]));
    }
    Tensor::from_data(TensorData::new(data, [rows, width]), &Device::flex())
}

/// Gathers `ids` and checks every value; returns the seconds the gather and read-back took.
fn check_gather(blocks: &RowBlocks, ids: &[i64], width: usize) -> f64 {
    let started = Instant::now();
    let rows = blocks.gather(ids);
    assert_eq!(rows.dims(), [ids.len(), width]);
    let got: Vec<f32> = rows
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap();
    let seconds = started.elapsed().as_secs_f64();
    for (i, &id) in ids.iter().enumerate() {
        for c in 0..width {
            let (g, w) = (got[i * width + c], value(id as usize, c));
            assert_eq!(g, w, "row {id} (position {i}), column {c}");
        }
    }
    seconds
}

#[test]
fn row_blocks_gather_in_order_across_blocks() {
    let mut devices = vec![Device::flex()];
    devices.extend(wgpu_device());
    for device in devices {
        let t = table(1000, 24);
        // 7 rows of 24 f32 per block: 143 blocks.
        let blocks = RowBlocks::with_max_bytes(t.clone(), &device, 7 * 24 * 4 + 5, "t").unwrap();
        assert_eq!(blocks.num_blocks(), 143);
        assert_eq!(blocks.dims(), [1000, 24]);
        let ids = [999, 0, 6, 7, 500, 6, 999, 13, 14, 1];
        check_gather(&blocks, &ids, 24);
        // One block when there is room.
        let one = RowBlocks::with_max_bytes(t.clone(), &device, u64::MAX, "t").unwrap();
        assert_eq!(one.num_blocks(), 1);
        check_gather(&one, &ids, 24);
        // A row larger than the limit is an error, not a panic.
        let err = RowBlocks::with_max_bytes(t, &device, 50, "the test table").unwrap_err();
        assert!(err.to_string().contains("the test table"), "{err}");
    }
}

#[test]
fn umt5_token_embedding_at_real_size_on_wgpu() {
    let Some(device) = wgpu_device() else {
        return;
    };
    // Host table (4.2 GB f32), its blocks' copies and lavapipe's device memory (host RAM).
    let needed = 14u64 << 30;
    let available = system_memory().map_or(0, |m| m.available);
    if available < needed {
        println!(
            "skipping: {available} bytes of RAM available, the real-size table needs {needed}"
        );
        return;
    }
    let limit = max_buffer_bytes(&device).unwrap();
    println!("largest buffer on {device:?}: {limit} bytes");
    let started = Instant::now();
    let host32 = table(VOCAB, DIM);
    let made = started.elapsed().as_secs_f64();
    // Both sides of every block boundary the f32 table gets, the last row, repeats.
    let per_block = ((limit / (DIM as u64 * 4)) as usize).min(VOCAB) as i64;
    let mut ids = vec![0, 1, 200_000, VOCAB as i64 - 1, 5, VOCAB as i64 - 1];
    for b in 1..=VOCAB as i64 / per_block {
        ids.extend([b * per_block - 1, b * per_block]);
    }
    ids.retain(|&i| i < VOCAB as i64);

    let f32_bytes = (VOCAB * DIM * 4) as u64;
    let t = Instant::now();
    let blocks = RowBlocks::new(host32.clone(), &device, "the token embedding").unwrap();
    let upload32 = t.elapsed().as_secs_f64();
    let expected_blocks = VOCAB.div_ceil(per_block as usize);
    assert_eq!(blocks.num_blocks(), expected_blocks);
    if f32_bytes > limit {
        assert!(blocks.num_blocks() >= 2);
    }
    for block in blocks.blocks() {
        let bytes = (block.shape().num_elements() * 4) as u64;
        assert!(bytes <= limit, "a block of {bytes} bytes");
    }
    let gather32 = check_gather(&blocks, &ids, DIM);
    drop(blocks);

    // f16 (the wgpu default for the text encoder): 2 100 297 728 bytes, just under 2 GiB.
    let host16 = host32.cast(FloatDType::F16);
    let f16_bytes = (VOCAB * DIM * 2) as u64;
    let t = Instant::now();
    let blocks16 = RowBlocks::new(host16, &device, "the token embedding").unwrap();
    let upload16 = t.elapsed().as_secs_f64();
    let rows16 = ((limit / (DIM as u64 * 2)) as usize).min(VOCAB);
    assert_eq!(blocks16.num_blocks(), VOCAB.div_ceil(rows16));
    let gather16 = check_gather(&blocks16, &ids, DIM);
    println!(
        "f32 table {f32_bytes} B in {} blocks (upload {upload32:.1} s, gather {gather32:.2} s); \
         f16 table {f16_bytes} B in {} block(s) (upload {upload16:.1} s, gather {gather16:.2} s); \
         host table made in {made:.1} s; total {:.1} s",
        expected_blocks,
        blocks16.num_blocks(),
        started.elapsed().as_secs_f64()
    );
}
