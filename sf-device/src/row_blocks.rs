//! A 2-D table too large for one device buffer, held as consecutive row blocks.
//!
//! cubecl refuses any single allocation above the device's page limit
//! ([`crate::max_buffer_bytes`]): 2 GiB − 1 on wgpu's Vulkan backend on Linux (wgpu caps
//! `max_buffer_size` and the storage-binding range at `i32::MAX` there). umT5-XXL's token
//! embedding, `[256384, 4096]`, is 3.91 GiB in f32, so on such a device it becomes two blocks;
//! rows are gathered from each block and put back in the order asked for.

use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::{DeviceError, human_bytes, max_buffer_bytes};

/// A `[rows, width]` table split into blocks of `rows_per_block` rows (the last one shorter),
/// each one device buffer.
#[derive(Clone, Debug)]
pub struct RowBlocks {
    blocks: Vec<Tensor<2>>,
    rows_per_block: usize,
    rows: usize,
    width: usize,
}

impl RowBlocks {
    /// Moves `table` to `device` in blocks no larger than the device's buffer limit: one block
    /// where the table fits (or the device has no limit).
    pub fn new(table: Tensor<2>, device: &Device, what: &str) -> Result<Self, DeviceError> {
        let limit = max_buffer_bytes(device).unwrap_or(u64::MAX);
        Self::with_max_bytes(table, device, limit, what)
    }

    /// Moves `table` to `device` in blocks of at most `max_block_bytes` bytes each.
    ///
    /// # Errors
    /// [`DeviceError::BufferTooLarge`] when a single row does not fit `max_block_bytes`.
    pub fn with_max_bytes(
        table: Tensor<2>,
        device: &Device,
        max_block_bytes: u64,
        what: &str,
    ) -> Result<Self, DeviceError> {
        let [rows, width] = table.dims();
        let row_bytes = (width * table.dtype().size()) as u64;
        if row_bytes > max_block_bytes {
            return Err(DeviceError::BufferTooLarge {
                what: format!("one row of {what} ({})", human_bytes(row_bytes)),
                bytes: row_bytes,
                limit: max_block_bytes,
                device: format!("{device:?}"),
            });
        }
        let rows_per_block = max_block_bytes
            .checked_div(row_bytes)
            .map_or(rows, |n| n as usize)
            .clamp(1, rows.max(1));
        let blocks = if rows_per_block >= rows {
            vec![table.to_device(device)]
        } else {
            (0..rows)
                .step_by(rows_per_block)
                .map(|start| {
                    let n = rows_per_block.min(rows - start);
                    table.clone().narrow(0, start, n).to_device(device)
                })
                .collect()
        };
        Ok(RowBlocks {
            blocks,
            rows_per_block,
            rows,
            width,
        })
    }

    /// `[rows, width]`.
    pub fn dims(&self) -> [usize; 2] {
        [self.rows, self.width]
    }

    /// The number of blocks (1 when the table is one buffer).
    pub fn num_blocks(&self) -> usize {
        self.blocks.len()
    }

    /// The blocks, in row order.
    pub fn blocks(&self) -> &[Tensor<2>] {
        &self.blocks
    }

    /// Rows `ids` as `[ids.len(), width]` on the table's device, in the order given (an id may
    /// repeat).
    ///
    /// # Panics
    /// When an id is negative or not below `rows` (callers check ids against the vocabulary).
    pub fn gather(&self, ids: &[i64]) -> Tensor<2> {
        let device = self.blocks[0].device();
        let index = |v: Vec<i64>| {
            let n = v.len();
            Tensor::<1, Int>::from_data(TensorData::new(v, [n]), &device)
        };
        assert!(
            ids.iter().all(|&i| i >= 0 && (i as usize) < self.rows),
            "row ids must be in 0..{}",
            self.rows
        );
        if self.blocks.len() == 1 {
            return self.blocks[0].clone().select(0, index(ids.to_vec()));
        }
        // Per block, the rows it holds; then the permutation back to the order of `ids`.
        let mut parts = Vec::new();
        let mut position = vec![0i64; ids.len()];
        let mut next = 0i64;
        for (b, block) in self.blocks.iter().enumerate() {
            let start = (b * self.rows_per_block) as i64;
            let end = start + block.dims()[0] as i64;
            let mut local = Vec::new();
            for (i, &id) in ids.iter().enumerate() {
                if (start..end).contains(&id) {
                    local.push(id - start);
                    position[i] = next;
                    next += 1;
                }
            }
            if !local.is_empty() {
                parts.push(block.clone().select(0, index(local)));
            }
        }
        let gathered = Tensor::cat(parts, 0);
        gathered.select(0, index(position))
    }
}
