//! Scheduler benchmarks: building the table and the per-step tensor arithmetic on Flex.

use burn::tensor::{Device, Tensor};
use criterion::{Criterion, criterion_group, criterion_main};
use sf_pipeline::FlowMatchScheduler;

fn scheduler(c: &mut Criterion) {
    c.bench_function("scheduler/table_1000", |b| {
        b.iter(|| FlowMatchScheduler::new(5.0, 1000).unwrap())
    });
    let sched = FlowMatchScheduler::new(5.0, 1000).unwrap();
    let device = Device::flex();
    // One real-size chunk: [1, 16, 3, 60, 104].
    let x = Tensor::<5>::ones([1, 16, 3, 60, 104], &device);
    let t = [937.5f32; 3];
    c.bench_function("scheduler/flow_to_x0_real_chunk", |b| {
        b.iter(|| {
            let out = sched.flow_to_x0(x.clone(), x.clone(), &t).unwrap();
            sf_device::sync(&device).unwrap();
            out
        })
    });
}

criterion_group!(benches, scheduler);
criterion_main!(benches);
