//! What the emulator tests (tests/emulator*.rs) share: an emulator, buffers, exact test data
//! and the message of an expected device error.

use pixelrnn::backend::cuda::{EmuOptions, Emulator, Executor};
use pixelrnn::error::Error;

/// An emulator with two workers, scheduling seed `seed`.
pub fn emu(seed: u64, bounds_check: bool) -> Emulator {
    Emulator::new(EmuOptions {
        seed,
        workers: 2,
        bounds_check,
    })
    .expect("emulator")
}

/// A buffer holding `data`.
pub fn upload(e: &Emulator, data: &[f32]) -> <Emulator as Executor>::Buffer {
    let mut b = e.alloc(data.len()).expect("alloc");
    e.upload_into(&mut b, data).expect("upload");
    b
}

/// A zeroed buffer of `len` floats.
pub fn zeros(e: &Emulator, len: usize) -> <Emulator as Executor>::Buffer {
    let mut b = e.alloc(len).expect("alloc");
    e.memset_zero(&mut b, len).expect("memset");
    b
}

/// Small integers (exact in any summation order), some negative.
pub fn ints(len: usize, seed: u32) -> Vec<f32> {
    (0..len as u32)
        .map(|i| ((i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 7) % 17) as f32 - 6.0)
        .collect()
}

/// The sums of consecutive chunks of `block` values.
pub fn block_sums(x: &[f32], block: usize) -> Vec<f32> {
    x.chunks(block).map(|c| c.iter().sum()).collect()
}

/// The message of the device error `r` must be (a panic otherwise).
pub fn device_message(r: pixelrnn::error::Result<()>) -> String {
    match r {
        Err(Error::Device(m)) => m,
        Err(e) => panic!("expected a device error, got {e}"),
        Ok(()) => panic!("expected an error, the launch succeeded"),
    }
}
