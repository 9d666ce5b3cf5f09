//! Where the CUDA compiler toolchain may be, first found first tried:
//! 1. nvcc: `$NVCC`, `$CUDA_HOME/bin`, `$CUDA_PATH/bin`, `PATH`, the toolchain folder,
//!    `/usr/local/cuda/bin` (each must then pass a probe, see [`crate::compiler`]);
//! 2. NVRTC: `libnvrtc.so*` of the toolchain folder, then `$CUDA_HOME`/`$CUDA_PATH`/
//!    `/usr/local/cuda` lib64, then the dynamic linker's search path;
//! 3. ptxas: next to the nvcc in use, the toolchain folder, the CUDA installs, `PATH`.
//!
//! The toolchain folder is `$PIXELRNN_CUDA_TOOLCHAIN`, or `.cuda-toolchain/` at the repository
//! root, as filled by `scripts/install-cuda-toolchain.sh` (pip wheels nvidia-cuda-nvrtc-cu12,
//! nvidia-cuda-runtime-cu12 for the headers, nvidia-cuda-nvcc-cu12 for ptxas).

use std::env;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

use crate::Ctx;

/// Written by scripts/install-cuda-toolchain.sh (kept in sync with it): a reinstall rewrites it.
pub const TOOLCHAIN_STAMP: &str = ".pixelrnn-toolchain-stamp";

/// The CUDA install tried last.
const DEFAULT_CUDA_ROOT: &str = "/usr/local/cuda";

/// Library names of NVRTC, newest first.
const NVRTC_NAMES: [&str; 3] = ["libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12"];

/// The pip-installed toolchain folder (it may not exist).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Toolchain {
    /// The folder (`.cuda-toolchain/`).
    pub root: PathBuf,
}

impl Toolchain {
    /// The folder `root`.
    pub fn at(root: PathBuf) -> Self {
        Toolchain { root }
    }

    /// `override_dir` (the value of `$PIXELRNN_CUDA_TOOLCHAIN`) when set and not empty, else
    /// `<repo_root>/.cuda-toolchain`.
    pub fn locate(override_dir: Option<OsString>, repo_root: &Path) -> Self {
        match override_dir {
            Some(dir) if !dir.is_empty() => Toolchain::at(PathBuf::from(dir)),
            _ => Toolchain::at(repo_root.join(".cuda-toolchain")),
        }
    }

    /// The installer's stamp file.
    pub fn stamp(&self) -> PathBuf {
        self.root.join(TOOLCHAIN_STAMP)
    }

    fn nvidia(&self) -> PathBuf {
        self.root.join("nvidia")
    }

    /// nvcc and ptxas of the nvidia-cuda-nvcc wheel.
    pub fn nvcc_bin(&self) -> PathBuf {
        self.nvidia().join("cuda_nvcc").join("bin")
    }

    /// libnvrtc of the nvidia-cuda-nvrtc wheel.
    pub fn nvrtc_lib(&self) -> PathBuf {
        self.nvidia().join("cuda_nvrtc").join("lib")
    }

    /// The CUDA headers of the nvidia-cuda-runtime wheel.
    pub fn include(&self) -> PathBuf {
        self.nvidia().join("cuda_runtime").join("include")
    }
}

/// `name` with the platform's executable suffix.
pub fn exe(name: &str) -> String {
    format!("{name}{}", env::consts::EXE_SUFFIX)
}

/// One way to load NVRTC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NvrtcCandidate {
    /// A file path, or a bare name for the dynamic linker.
    pub lib: String,
    /// How `pixelrnn info` shows it.
    pub shown: String,
    /// Include paths for the CUDA headers that go with it.
    pub includes: Vec<PathBuf>,
}

/// What the environment says about CUDA installs, read once.
#[derive(Clone, Debug, Default)]
pub struct Search {
    /// `$NVCC`, when set and not empty.
    pub nvcc_var: Option<PathBuf>,
    /// `$CUDA_HOME` and `$CUDA_PATH` when set, then `/usr/local/cuda`; those that exist.
    pub cuda_roots: Vec<PathBuf>,
    /// The directories of `PATH`.
    pub path: Vec<PathBuf>,
}

impl Search {
    /// From this process's environment.
    pub fn from_env() -> Self {
        let mut cuda_roots: Vec<PathBuf> = ["CUDA_HOME", "CUDA_PATH"]
            .iter()
            .filter_map(|var| env::var_os(var).filter(|d| !d.is_empty()))
            .map(PathBuf::from)
            .collect();
        cuda_roots.push(PathBuf::from(DEFAULT_CUDA_ROOT));
        cuda_roots.retain(|r| r.is_dir());
        cuda_roots.dedup();
        Search {
            nvcc_var: env::var_os("NVCC")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            cuda_roots,
            path: env::var_os("PATH")
                .map(|p| env::split_paths(&p).collect())
                .unwrap_or_default(),
        }
    }

    /// The first `name` (an executable) on `PATH`.
    pub fn on_path(&self, name: &str) -> Option<PathBuf> {
        self.path
            .iter()
            .map(|dir| dir.join(exe(name)))
            .find(|p| p.is_file())
    }

    /// nvcc paths in order of precedence, without duplicates (they may not exist).
    pub fn nvcc_candidates(&self, toolchain: &Toolchain) -> Vec<PathBuf> {
        let default_root = Path::new(DEFAULT_CUDA_ROOT);
        let mut nvccs: Vec<PathBuf> = self.nvcc_var.iter().cloned().collect();
        for root in self
            .cuda_roots
            .iter()
            .filter(|r| r.as_path() != default_root)
        {
            nvccs.push(root.join("bin").join(exe("nvcc")));
        }
        nvccs.extend(self.on_path("nvcc"));
        nvccs.push(toolchain.nvcc_bin().join(exe("nvcc")));
        nvccs.push(default_root.join("bin").join(exe("nvcc")));
        let mut seen = Vec::new();
        nvccs.retain(|p| {
            let new = !seen.contains(p);
            seen.push(p.clone());
            new
        });
        nvccs
    }

    /// NVRTC libraries in order of precedence: absolute files first (those of the toolchain
    /// folder that exist, then the CUDA installs' lib64), then names for the dynamic linker.
    /// A missing toolchain folder is noted in `tried`.
    pub fn nvrtc_candidates(&self, ctx: &Ctx, tried: &mut Vec<String>) -> Vec<NvrtcCandidate> {
        let mut libs = Vec::new();
        let toolchain_includes: Vec<PathBuf> = Some(ctx.toolchain.include())
            .filter(|p| p.is_dir())
            .into_iter()
            .collect();
        if let Ok(dir) = fs::read_dir(ctx.toolchain.nvrtc_lib()) {
            let mut found: Vec<PathBuf> = dir
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                    n.starts_with("libnvrtc.so")
                        || (n.starts_with("nvrtc64") && n.ends_with(".dll"))
                })
                .collect();
            found.sort();
            for lib in found {
                libs.push(NvrtcCandidate {
                    lib: lib.display().to_string(),
                    shown: ctx.display_path(&lib),
                    includes: toolchain_includes.clone(),
                });
            }
        } else {
            tried.push(format!(
                "nvrtc: no toolchain at {} (scripts/install-cuda-toolchain.sh)",
                ctx.toolchain.root.display()
            ));
        }
        for root in &self.cuda_roots {
            let mut includes = vec![root.join("include")];
            includes.extend(toolchain_includes.iter().cloned());
            for name in NVRTC_NAMES {
                let lib = root.join("lib64").join(name).display().to_string();
                libs.push(NvrtcCandidate {
                    lib: lib.clone(),
                    shown: lib,
                    includes: includes.clone(),
                });
            }
        }
        for name in NVRTC_NAMES {
            libs.push(NvrtcCandidate {
                lib: name.to_string(),
                shown: format!("{name}, system"),
                includes: toolchain_includes.clone(),
            });
        }
        libs
    }

    /// The ptxas to use: the one next to `nvcc` (it understands that compiler's PTX version),
    /// else the toolchain folder's, a CUDA install's, or the first on `PATH`.
    pub fn ptxas(&self, toolchain: &Toolchain, nvcc: Option<&Path>) -> Option<PathBuf> {
        let mut candidates = Vec::new();
        if let Some(dir) = nvcc.and_then(Path::parent) {
            candidates.push(dir.join(exe("ptxas")));
        }
        candidates.push(toolchain.nvcc_bin().join(exe("ptxas")));
        for root in &self.cuda_roots {
            candidates.push(root.join("bin").join(exe("ptxas")));
        }
        candidates.extend(self.on_path("ptxas"));
        candidates.into_iter().find(|p| p.is_file())
    }
}

/// "Cuda compilation tools, release 12.9, V12.9.86" -> "12.9.86" (nvcc and ptxas `--version`).
pub fn cuda_version_of(version_output: &str) -> Option<String> {
    version_output
        .lines()
        .rev()
        .find_map(|l| l.split(", V").nth(1))
        .map(|v| v.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(repo: &Path) -> Ctx {
        Ctx {
            require: false,
            repo_root: repo.to_path_buf(),
            kernels_dir: repo.join("kernels"),
            ptx_dir: repo.join("out"),
            toolchain: Toolchain::locate(None, repo),
        }
    }

    #[test]
    fn the_toolchain_folder_is_the_override_or_the_repository_s() {
        let repo = Path::new("/repo");
        assert_eq!(
            Toolchain::locate(None, repo).root,
            Path::new("/repo/.cuda-toolchain")
        );
        assert_eq!(
            Toolchain::locate(Some(OsString::new()), repo).root,
            Path::new("/repo/.cuda-toolchain")
        );
        let t = Toolchain::locate(Some("/opt/tc".into()), repo);
        assert_eq!(t.root, Path::new("/opt/tc"));
        assert_eq!(t.stamp(), Path::new("/opt/tc/.pixelrnn-toolchain-stamp"));
        assert_eq!(t.nvcc_bin(), Path::new("/opt/tc/nvidia/cuda_nvcc/bin"));
        assert_eq!(t.nvrtc_lib(), Path::new("/opt/tc/nvidia/cuda_nvrtc/lib"));
        assert_eq!(
            t.include(),
            Path::new("/opt/tc/nvidia/cuda_runtime/include")
        );
    }

    #[test]
    fn nvcc_candidates_follow_the_precedence_without_duplicates() {
        let dir = crate::test_dir("nvcc-candidates");
        fs::write(dir.join(exe("nvcc")), "").unwrap();
        let search = Search {
            nvcc_var: Some(PathBuf::from("/env/nvcc")),
            cuda_roots: vec![
                PathBuf::from("/cuda-home"),
                PathBuf::from(DEFAULT_CUDA_ROOT),
            ],
            path: vec![dir.join("missing"), dir.clone()],
        };
        let tc = Toolchain::at(PathBuf::from("/tc"));
        assert_eq!(
            search.nvcc_candidates(&tc),
            [
                PathBuf::from("/env/nvcc"),
                PathBuf::from("/cuda-home/bin").join(exe("nvcc")),
                dir.join(exe("nvcc")),
                PathBuf::from("/tc/nvidia/cuda_nvcc/bin").join(exe("nvcc")),
                PathBuf::from("/usr/local/cuda/bin").join(exe("nvcc")),
            ]
        );
        let twice = Search {
            nvcc_var: Some(PathBuf::from("/usr/local/cuda/bin").join(exe("nvcc"))),
            ..Search::default()
        };
        assert_eq!(twice.nvcc_candidates(&tc).len(), 2);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn nvrtc_candidates_start_with_the_toolchain_folder() {
        let repo = crate::test_dir("nvrtc-candidates");
        let c = ctx(&repo);
        let mut tried = Vec::new();
        let none = Search::default().nvrtc_candidates(&c, &mut tried);
        assert_eq!(tried.len(), 1, "{tried:?}");
        assert!(tried[0].contains("no toolchain at"), "{tried:?}");
        let names: Vec<&str> = none.iter().map(|l| l.lib.as_str()).collect();
        assert_eq!(names, NVRTC_NAMES);
        assert_eq!(none[0].shown, "libnvrtc.so, system");

        fs::create_dir_all(c.toolchain.nvrtc_lib()).unwrap();
        fs::create_dir_all(c.toolchain.include()).unwrap();
        fs::write(c.toolchain.nvrtc_lib().join("libnvrtc.so.12"), "").unwrap();
        fs::write(c.toolchain.nvrtc_lib().join("libnvrtc-builtins.so"), "").unwrap();
        let search = Search {
            cuda_roots: vec![PathBuf::from("/cuda")],
            ..Search::default()
        };
        let mut tried = Vec::new();
        let libs = search.nvrtc_candidates(&c, &mut tried);
        assert!(tried.is_empty(), "{tried:?}");
        assert_eq!(libs.len(), 1 + 3 + 3);
        assert_eq!(
            libs[0].shown,
            ".cuda-toolchain/nvidia/cuda_nvrtc/lib/libnvrtc.so.12"
        );
        assert_eq!(libs[0].includes, [c.toolchain.include()]);
        assert_eq!(libs[1].lib, "/cuda/lib64/libnvrtc.so");
        assert_eq!(
            libs[1].includes,
            [PathBuf::from("/cuda/include"), c.toolchain.include()]
        );
        fs::remove_dir_all(&repo).unwrap();
    }

    #[test]
    fn ptxas_is_taken_next_to_nvcc_first() {
        let dir = crate::test_dir("ptxas");
        let tc = Toolchain::at(dir.join("tc"));
        fs::create_dir_all(tc.nvcc_bin()).unwrap();
        fs::create_dir_all(dir.join("nvcc-bin")).unwrap();
        let search = Search::default();
        assert_eq!(search.ptxas(&tc, None), None);
        fs::write(tc.nvcc_bin().join(exe("ptxas")), "").unwrap();
        assert_eq!(
            search.ptxas(&tc, None),
            Some(tc.nvcc_bin().join(exe("ptxas")))
        );
        fs::write(dir.join("nvcc-bin").join(exe("ptxas")), "").unwrap();
        let nvcc = dir.join("nvcc-bin").join(exe("nvcc"));
        assert_eq!(
            search.ptxas(&tc, Some(&nvcc)),
            Some(dir.join("nvcc-bin").join(exe("ptxas")))
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn cuda_versions_are_read_from_version_output() {
        let out = "nvcc: NVIDIA (R) Cuda compiler driver\nCuda compilation tools, release 12.9, V12.9.86\nBuild cuda_12.9.r12.9\n";
        assert_eq!(cuda_version_of(out).as_deref(), Some("12.9.86"));
        assert_eq!(cuda_version_of("no version here"), None);
    }
}
