//! The embedded kernel registry matches what the kernels crate's build script (kernels/build.rs)
//! was asked to do, and CUDA detection never
//! panics. CI sets PIXELRNN_REQUIRE_KERNELS=1, and then every kernel must have been compiled.

use pixelrnn::device::cuda_devices;
use pixelrnn::kernels::{self, KernelModule, KERNELS_COMPILED, KERNEL_COMPILER, PTX_ARCH};

/// Every kernels/*.cu with the entry points it must define: the kernels declared in its source
/// (the signature table, parsed from every source in every build), so that CI notices a kernel
/// that silently went missing from the PTX, with no list to keep up to date.
fn expected() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut expected: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for s in kernels::signatures() {
        match expected.iter_mut().find(|(m, _)| *m == s.module) {
            Some((_, entries)) => entries.push(s.name),
            None => expected.push((s.module, vec![s.name])),
        }
    }
    expected
}

fn kernels_required() -> bool {
    std::env::var("PIXELRNN_REQUIRE_KERNELS").is_ok_and(|v| v == "1")
}

fn kernel_sources() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("kernels");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("kernels/ exists")
        .filter_map(|e| {
            let path = e.ok()?.path();
            (path.extension()? == "cu").then(|| path.file_stem()?.to_str().map(String::from))?
        })
        .collect();
    names.sort();
    names
}

#[test]
fn registry_is_consistent() {
    assert_eq!(
        kernels::modules().is_empty(),
        !KERNELS_COMPILED,
        "modules() must be empty exactly when no kernels were compiled"
    );
    assert_eq!(
        KERNEL_COMPILER == "none",
        !KERNELS_COMPILED,
        "{KERNEL_COMPILER}"
    );
    for m in kernels::modules() {
        assert_eq!(kernels::module(m.name), Some(m));
        assert!(!m.entry_points.is_empty(), "{} defines no kernel", m.name);
    }
}

#[test]
fn kernels_are_compiled_when_required() {
    if !kernels_required() {
        eprintln!(
            "PIXELRNN_REQUIRE_KERNELS is not 1: kernels compiled = {KERNELS_COMPILED} ({KERNEL_COMPILER})"
        );
        return;
    }
    assert!(
        KERNELS_COMPILED && !kernels::modules().is_empty(),
        "PIXELRNN_REQUIRE_KERNELS=1 but the build embeds no kernels ({KERNEL_COMPILER})"
    );
}

#[test]
fn every_kernel_source_is_a_module() {
    if !KERNELS_COMPILED {
        return;
    }
    let names: Vec<&str> = kernels::modules().iter().map(|m| m.name).collect();
    assert_eq!(names, kernel_sources(), "one PTX module per kernels/*.cu");
}

#[test]
fn modules_have_expected_entry_points_and_arch() {
    if !KERNELS_COMPILED {
        return;
    }
    // compute_80 PTX says `.target sm_80`; a file whose first line is the compute_90 marker
    // (kernels/cluster.cuh: thread-block clusters) is `.target sm_90`.
    let default_target = PTX_ARCH.replace("compute_", "sm_");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("kernels");
    let expected = expected();
    let mut modules: Vec<&str> = expected.iter().map(|(name, _)| *name).collect();
    modules.sort_unstable();
    assert_eq!(
        modules,
        kernel_sources(),
        "one signature module per kernels/*.cu"
    );
    for (name, entries) in &expected {
        let m: &KernelModule = kernels::module(name)
            .unwrap_or_else(|| panic!("module {name} is missing from the build"));
        assert_eq!(
            m.entry_points.len(),
            entries.len(),
            "{name}: the PTX defines {:?}, the source declares {entries:?}",
            m.entry_points
        );
        for entry in entries {
            assert!(
                m.has_entry_point(entry),
                "{name}: no kernel {entry} (has {:?})",
                m.entry_points
            );
            let directive = format!(".entry {entry}(");
            assert!(
                m.ptx.contains(&directive),
                "{name}: PTX lacks `{directive}`"
            );
        }
        let source = std::fs::read_to_string(dir.join(format!("{name}.cu"))).expect("source");
        let target = if source
            .lines()
            .any(|l| l.trim() == "// pixelrnn: arch compute_90")
        {
            "sm_90".to_string()
        } else {
            default_target.clone()
        };
        assert_eq!(
            m.ptx_target(),
            Some(target.as_str()),
            "{name}: wrong .target"
        );
        let version = m.ptx_version().expect(".version directive");
        assert!(
            version.starts_with(|c: char| c.is_ascii_digit()),
            "{version}"
        );
        assert!(m.ptx.contains(".address_size 64"), "{name}: not 64-bit PTX");
    }
}

#[test]
fn resource_reports_name_every_kernel() {
    for m in kernels::modules() {
        let Some(report) = m.resource_report else {
            continue;
        };
        for entry in m.entry_points {
            assert!(
                report.contains(&format!("Function properties for {entry}")),
                "{}: ptxas report does not cover {entry}:\n{report}",
                m.name
            );
        }
        assert!(report.contains("registers"), "{report}");
    }
}

/// The resources `pixelrnn info` prints (the report parsed at build time) name every kernel of
/// a module that has a report, each with its register count.
#[test]
fn resources_are_parsed_for_every_kernel() {
    for m in kernels::modules() {
        if m.resource_report.is_none() {
            assert!(m.resources.is_empty(), "{}", m.name);
            continue;
        }
        for entry in m.entry_points {
            let r = m
                .resources(entry)
                .unwrap_or_else(|| panic!("{}: no resources for {entry}", m.name));
            assert!(r.registers.is_some(), "{}: {entry}: {r:?}", m.name);
        }
        assert_eq!(m.resources.len(), m.entry_points.len(), "{}", m.name);
    }
}

/// Wherever ptxas ran (it wrote the report), the sm_90 cubin it assembled is embedded too, as
/// an ELF image defining every kernel of the module: the CUDA backend loads it on sm_90
/// devices instead of JIT-compiling the PTX.
#[test]
fn cubins_are_embedded_where_ptxas_ran() {
    for m in kernels::modules() {
        if m.resource_report.is_none() {
            continue;
        }
        let cubin = m
            .cubin
            .unwrap_or_else(|| panic!("{}: ptxas ran but no cubin is embedded", m.name));
        assert_eq!(
            &cubin[..4],
            b"\x7fELF",
            "{}: the cubin is not an ELF image",
            m.name
        );
        for entry in m.entry_points {
            let found = cubin.windows(entry.len()).any(|w| w == entry.as_bytes());
            assert!(found, "{}: the cubin does not define {entry}", m.name);
        }
    }
}

#[test]
fn cuda_detection_does_not_panic() {
    match cuda_devices() {
        Ok(devices) => {
            assert!(!devices.is_empty(), "Ok means at least one device");
            for (i, d) in devices.iter().enumerate() {
                assert_eq!(d.ordinal, i);
                assert!(!d.name.is_empty());
                assert!(d.total_memory_bytes > 0);
                assert!(d.compute_capability.0 >= 3, "{:?}", d.compute_capability);
            }
        }
        Err(reason) => assert!(!reason.is_empty(), "Err must say why"),
    }
    // Cached: a second call gives the same answer.
    assert_eq!(cuda_devices(), cuda_devices());
}
