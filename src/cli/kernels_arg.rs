//! `--kernels` of `bench` and `profile`: CUDA kernel versions other than the defaults, in force
//! for the whole command. The text is parsed once, by `Variants::with_spec`.

use anyhow::bail;
use pixelrnn::backend::cpu::CpuBackend;
use pixelrnn::backend::cuda::{CudaBackend, Executor, Selected};
use pixelrnn::error::Error;

/// A backend whose kernel versions `--kernels` can set.
pub trait KernelSelection {
    /// What keeps the selection in force; dropping it restores the defaults.
    type Guard<'a>
    where
        Self: 'a;

    /// Puts the versions `spec` names in force over the current selection, until the guard
    /// is dropped (`None`: nothing to do). A spec that does not parse, or any spec on a backend
    /// without kernel versions, is one clear error.
    fn select_kernels(&self, spec: Option<&str>) -> anyhow::Result<Option<Self::Guard<'_>>>;
}

impl KernelSelection for CpuBackend {
    type Guard<'a> = ();

    fn select_kernels(&self, spec: Option<&str>) -> anyhow::Result<Option<()>> {
        match spec {
            None => Ok(None),
            Some(_) => bail!(
                "--kernels selects CUDA kernel versions, and this run is on the CPU backend \
                 (use --device cuda, or --device emulator)"
            ),
        }
    }
}

impl<E: Executor> KernelSelection for CudaBackend<E> {
    type Guard<'a>
        = Selected<'a, E>
    where
        E: 'a;

    fn select_kernels(&self, spec: Option<&str>) -> anyhow::Result<Option<Selected<'_, E>>> {
        let Some(spec) = spec else {
            return Ok(None);
        };
        let variants = self.variants().with_spec(spec).map_err(|e| match e {
            Error::Config(m) => anyhow::anyhow!("--kernels: {m}"),
            e => anyhow::anyhow!("--kernels: {e}"),
        })?;
        Ok(Some(self.select(variants)))
    }
}
