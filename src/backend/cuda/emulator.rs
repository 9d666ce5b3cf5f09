//! INTERIM: the CPU emulation of the CUDA execution model (issue 9) is being written.
use super::executor::{Arg, Executor, LaunchCfg};
use crate::error::{Error, Result};

/// Runs `kernels/*.cu` on the CPU under an emulation of CUDA's execution model.
pub struct Emulator;

impl Executor for Emulator {
    type Buffer = Vec<f32>;
    fn name(&self) -> String {
        "cuda emulator".into()
    }
    fn alloc(&self, len: usize) -> Result<Vec<f32>> {
        Ok(vec![0.0; len])
    }
    fn memset_zero(&self, buf: &mut Vec<f32>, _len: usize) -> Result<()> {
        buf.fill(0.0);
        Ok(())
    }
    fn upload_into(&self, buf: &mut Vec<f32>, data: &[f32]) -> Result<()> {
        buf[..data.len()].copy_from_slice(data);
        Ok(())
    }
    fn download(&self, buf: &Vec<f32>, len: usize) -> Result<Vec<f32>> {
        Ok(buf[..len].to_vec())
    }
    fn copy(&self, src: &Vec<f32>, dst: &mut Vec<f32>, len: usize) -> Result<()> {
        dst[..len].copy_from_slice(&src[..len]);
        Ok(())
    }
    fn launch(&self, kernel: &str, _cfg: &LaunchCfg, _args: &[Arg<'_, Self>]) -> Result<()> {
        Err(Error::Unsupported(format!("emulator not built yet ({kernel})")))
    }
    fn synchronize(&self) -> Result<()> {
        Ok(())
    }
}
