use pixelrnn::backend::cpu::CpuBackend;
#[test]
fn placeholder() { let _ = CpuBackend::new(); }
