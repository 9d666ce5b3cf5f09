//! `--kernels` of `bench`, `profile`, `train`, `eval` and `sample`: CUDA kernel versions other
//! than the defaults, in force for the whole command. The text is parsed once, by
//! `Variants::with_spec`.

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

    /// The kernel versions in force, one line (`masked_conv2d v5, ...`).
    fn kernel_versions(&self) -> String;
}

/// The line `train`, `eval` and `sample` print when `--kernels` is given (`None` without it):
/// every version in force, so that a log says what ran.
pub fn versions_note<B: KernelSelection>(backend: &B, spec: Option<&str>) -> Option<String> {
    spec.map(|spec| format!("kernels (--kernels {spec}): {}", backend.kernel_versions()))
}

/// Runs a whole command (`train`, `eval`, `sample`) on `backend` under `spec`'s versions:
/// `run` gets the backend and the command's start note (`auto_note`, the `--device auto` line,
/// then [`versions_note`]'s). A clone of the backend holds the selection until `run` returns
/// (clones share it).
pub fn run_selected<B, T>(
    backend: B,
    spec: Option<&str>,
    auto_note: Option<String>,
    run: impl FnOnce(B, Option<String>) -> anyhow::Result<T>,
) -> anyhow::Result<T>
where
    B: KernelSelection + Clone,
{
    let keep = backend.clone();
    let _kernels = keep.select_kernels(spec)?;
    let note = super::join_notes(auto_note, versions_note(&keep, spec));
    run(backend, note)
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

    fn kernel_versions(&self) -> String {
        "the CPU backend's (no CUDA kernels)".into()
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

    fn kernel_versions(&self) -> String {
        self.variants().to_string()
    }
}
