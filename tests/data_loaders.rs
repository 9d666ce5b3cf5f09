//! Data loaders through the public API: exact values on hand-made files, and one clear error
//! (naming the file) for each kind of bad input.

use std::path::{Path, PathBuf};

use pixelrnn::data::{
    embedded_mnist, load_cifar10_batch, load_dataset, load_idx, load_npy, load_npz, save_npy_u8,
    DataError, Images, BINARIZE_THRESHOLD,
};

/// A hand-made .npy (format 1.0) with the given descr and shape text, then `data`.
fn npy_bytes(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
    let mut text = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + text.len() + 1) % 64 != 0 {
        text.push(' ');
    }
    text.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(text.len() as u16).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(data);
    out
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn ramp(n: usize, h: usize, w: usize, c: usize) -> Images {
    let pixels = (0..n * h * w * c).map(|i| (i * 7 % 256) as u8).collect();
    Images::new(n, h, w, c, false, pixels).unwrap()
}

fn idx_bytes(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = magic.to_be_bytes().to_vec();
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

/// One CIFAR-10 record whose pixel (row y, col x) of channel c is `f(c, y * 32 + x)`.
fn cifar_record(label: u8, f: impl Fn(usize, usize) -> u8) -> Vec<u8> {
    let mut rec = vec![label];
    for c in 0..3 {
        rec.extend((0..1024).map(|p| f(c, p)));
    }
    rec
}

// ------------------------------------------------------------------------------- .npy

#[test]
fn npy_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    for (c, name) in [(1, "grey.npy"), (3, "rgb.npy")] {
        let images = ramp(5, 4, 3, c);
        let path = dir.path().join(name);
        save_npy_u8(&path, &images).unwrap();
        let back = load_npy(&path).unwrap();
        assert_eq!(back, images);
        assert_eq!(
            (back.n, back.height, back.width, back.channels),
            (5, 4, 3, c)
        );
    }
}

#[test]
fn npy_rank3_is_one_channel() {
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..12).map(|v| v * 21).collect();
    let path = write(dir.path(), "x.npy", &npy_bytes("|u1", "(2, 2, 3)", &data));
    let im = load_npy(&path).unwrap();
    assert_eq!(
        (im.n, im.height, im.width, im.channels, im.binary),
        (2, 2, 3, 1, false)
    );
    assert_eq!(im.pixels, data);
    assert_eq!(im.image(1), &[126, 147, 168, 189, 210, 231]);
}

#[test]
fn npy_float64_rejected_naming_dtype_and_shape() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "foo.npy",
        &npy_bytes("<f8", "(4, 8, 8, 1)", &[0; 4 * 64 * 8]),
    );
    let err = load_npy(&path).unwrap_err();
    assert!(matches!(err, DataError::BadArray { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "{}: expected uint8 images of shape N x H x W x C, found float64 [4, 8, 8, 1]",
            path.display()
        )
    );
}

#[test]
fn npy_rank2_and_bad_channels_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "flat.npy",
        &npy_bytes("|u1", "(4, 784)", &[0; 4 * 784]),
    );
    let err = load_npy(&path).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "{}: expected uint8 images of shape N x H x W x C, found uint8 [4, 784]",
            path.display()
        )
    );
    let path = write(
        dir.path(),
        "two.npy",
        &npy_bytes("|u1", "(1, 2, 2, 2)", &[0; 8]),
    );
    let err = load_npy(&path).unwrap_err().to_string();
    assert!(
        err.ends_with("found uint8 [1, 2, 2, 2] (C must be 1 or 3)"),
        "{err}"
    );
    let path = write(
        dir.path(),
        "i64.npy",
        &npy_bytes("<i8", "(1, 1, 1)", &[0; 8]),
    );
    assert!(load_npy(&path)
        .unwrap_err()
        .to_string()
        .contains("found int64 [1, 1, 1]"));
}

#[test]
fn npy_truncated_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.npy");
    save_npy_u8(&path, &ramp(3, 4, 4, 1)).unwrap();
    let full = std::fs::read(&path).unwrap();
    std::fs::write(&path, &full[..full.len() - 5]).unwrap();
    let err = load_npy(&path).unwrap_err();
    match &err {
        DataError::Truncated {
            path: p,
            expected,
            found,
            ..
        } => {
            assert_eq!(p, &path.display().to_string());
            assert_eq!(*expected, full.len() as u64);
            assert_eq!(*found, full.len() as u64 - 5);
        }
        other => panic!("expected Truncated, got {other:?}"),
    }
    assert!(err
        .to_string()
        .starts_with(&format!("{}: truncated", path.display())));
    // Cut inside the header, and inside the magic.
    std::fs::write(&path, &full[..20]).unwrap();
    assert!(matches!(load_npy(&path), Err(DataError::Truncated { .. })));
    std::fs::write(&path, &full[..3]).unwrap();
    assert!(matches!(load_npy(&path), Err(DataError::Truncated { .. })));
    std::fs::write(&path, b"").unwrap();
    assert!(matches!(load_npy(&path), Err(DataError::BadMagic { .. })));
}

#[test]
fn missing_files_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.npy");
    let err = load_npy(&path).unwrap_err();
    assert!(matches!(err, DataError::NotFound { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("{}: no such file or directory", path.display())
    );
    assert!(matches!(load_idx(&path), Err(DataError::NotFound { .. })));
    assert!(matches!(
        load_cifar10_batch(&path),
        Err(DataError::NotFound { .. })
    ));
    assert!(matches!(load_npz(&path), Err(DataError::NotFound { .. })));
    let spec = path.display().to_string();
    let err = load_dataset(&spec, false).unwrap_err();
    assert!(matches!(err, DataError::UnknownDataset { .. }), "{err:?}");
    assert!(err
        .to_string()
        .starts_with(&format!("{spec}: no such file or directory")));
    assert!(load_dataset("mnistt", false).is_err());
}

// ------------------------------------------------------------------------------- .npz

fn write_npz(path: &Path, arrays: &[(&str, &[u64], &[u8])]) {
    use npyz::WriterBuilder;
    let mut npz = npyz::npz::NpzWriter::create(path).unwrap();
    for (name, shape, data) in arrays {
        let mut w = npz
            .array::<u8>(name, Default::default())
            .unwrap()
            .default_dtype()
            .shape(shape)
            .begin_nd()
            .unwrap();
        w.extend(data.iter().copied()).unwrap();
        w.finish().unwrap();
    }
}

/// Overwrites the CRC-32 of every member (local headers and central directory) of the zip
/// at `path` with a wrong value, leaving the data as it was.
fn corrupt_zip_crcs(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let mut patched = 0;
    for (signature, crc_at) in [(*b"PK\x03\x04", 14), (*b"PK\x01\x02", 16)] {
        let mut k = 0;
        while k + 4 <= bytes.len() {
            if bytes[k..k + 4] == signature {
                for b in &mut bytes[k + crc_at..k + crc_at + 4] {
                    *b ^= 0x5a;
                }
                patched += 1;
            }
            k += 1;
        }
    }
    assert!(patched >= 2, "no zip headers found");
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn npz_member_with_a_wrong_crc_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crc.npz");
    let data: Vec<u8> = (0..16).collect();
    write_npz(&path, &[("digits", &[4, 2, 2], &data)]);
    assert!(load_npz(&path).is_ok(), "the intact archive loads");
    corrupt_zip_crcs(&path);
    let err = load_npz(&path).unwrap_err().to_string();
    assert!(err.contains("CRC-32"), "{err}");
    assert!(err.contains("crc.npz[digits]"), "{err}");
}

#[test]
fn npz_with_train_and_test() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.npz");
    let train: Vec<u8> = (0..12).collect();
    let test: Vec<u8> = (100..108).collect();
    write_npz(
        &path,
        &[
            ("labels", &[3], &[1, 2, 3]),
            ("train", &[3, 2, 2, 1], &train),
            ("test", &[2, 2, 2], &test),
        ],
    );
    let d = load_npz(&path).unwrap();
    assert_eq!(
        (d.train.n, d.train.height, d.train.width, d.train.channels),
        (3, 2, 2, 1)
    );
    assert_eq!(d.train.pixels, train);
    assert_eq!((d.test.n, d.test.channels), (2, 1));
    assert_eq!(d.test.pixels, test);
    let same = load_dataset(&path.display().to_string(), false).unwrap();
    assert_eq!((same.train, same.test), (d.train, d.test));
}

#[test]
fn npz_single_array_is_split_and_others_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("one.npz");
    let data: Vec<u8> = (0..25).collect();
    write_npz(&path, &[("digits", &[25, 1, 1], &data)]);
    let d = load_npz(&path).unwrap();
    // last max(1, 25 / 10) = 2 images are the test split
    assert_eq!(d.train.pixels, (0..23).collect::<Vec<u8>>());
    assert_eq!(d.test.pixels, vec![23, 24]);

    let path = dir.path().join("two.npz");
    write_npz(
        &path,
        &[("a", &[2, 1, 1], &[0, 1]), ("b", &[2, 1, 1], &[0, 1])],
    );
    let err = load_npz(&path).unwrap_err().to_string();
    assert!(
        err.starts_with(&path.display().to_string()) && err.contains("\"train\""),
        "{err}"
    );

    let path = dir.path().join("float.npz");
    std::fs::write(&path, b"not a zip at all").unwrap();
    assert!(load_npz(&path)
        .unwrap_err()
        .to_string()
        .starts_with(&path.display().to_string()));

    let path = dir.path().join("mismatch.npz");
    write_npz(
        &path,
        &[
            ("train", &[2, 2, 2], &[0; 8]),
            ("test", &[1, 1, 2], &[0; 2]),
        ],
    );
    assert!(load_npz(&path).is_err());
}

#[test]
fn npy_single_set_split_rule() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.npy");
    save_npy_u8(&path, &ramp(10, 2, 2, 3)).unwrap();
    let d = load_dataset(&path.display().to_string(), false).unwrap();
    assert_eq!((d.train.n, d.test.n), (9, 1));
    assert_eq!(d.test.image(0), ramp(10, 2, 2, 3).image(9));
    save_npy_u8(&path, &ramp(1, 2, 2, 3)).unwrap();
    assert!(load_dataset(&path.display().to_string(), false).is_err());
}

// ------------------------------------------------------------------------------- IDX

#[test]
fn idx_hand_made_file() {
    let dir = tempfile::tempdir().unwrap();
    let pixels: Vec<u8> = vec![0, 1, 2, 3, 4, 5, 250, 251, 252, 253, 254, 255];
    let path = write(
        dir.path(),
        "train-images-idx3-ubyte",
        &idx_bytes(0x0000_0803, &[2, 2, 3], &pixels),
    );
    let im = load_idx(&path).unwrap();
    assert_eq!(
        (im.n, im.height, im.width, im.channels, im.binary),
        (2, 2, 3, 1, false)
    );
    assert_eq!(im.image(0), &[0, 1, 2, 3, 4, 5]);
    assert_eq!(im.image(1), &[250, 251, 252, 253, 254, 255]);

    // A folder with the two MNIST files: train and test splits.
    write(
        dir.path(),
        "t10k-images-idx3-ubyte",
        &idx_bytes(0x803, &[1, 2, 3], &[9; 6]),
    );
    let d = load_dataset(&dir.path().display().to_string(), false).unwrap();
    assert_eq!(d.train, im);
    assert_eq!(d.test.pixels, vec![9; 6]);

    // A lone IDX file without a known extension is recognized by its magic and split.
    let d = load_dataset(&path.display().to_string(), false).unwrap();
    assert_eq!((d.train.n, d.test.n), (1, 1));
}

#[test]
fn idx_bad_magic_and_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "bad", &idx_bytes(0x0000_0903, &[1, 1, 1], &[0]));
    let err = load_idx(&path).unwrap_err();
    assert!(matches!(err, DataError::BadArray { .. }), "{err:?}");
    let path = write(
        dir.path(),
        "bad2",
        &idx_bytes(0x0102_0803, &[1, 1, 1], &[0]),
    );
    let err = load_idx(&path).unwrap_err();
    assert!(matches!(err, DataError::BadMagic { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "{}: not an IDX images file (magic 0x01020803, expected 0x00000803)",
            path.display()
        )
    );
    let path = write(dir.path(), "labels", &idx_bytes(0x801, &[3], &[1, 2, 3]));
    assert!(load_idx(&path).unwrap_err().to_string().contains("labels"));
    let path = write(
        dir.path(),
        "short",
        &idx_bytes(0x803, &[2, 28, 28], &[0; 1000]),
    );
    assert!(matches!(load_idx(&path), Err(DataError::Truncated { .. })));
}

// ------------------------------------------------------------------------------- CIFAR-10

#[test]
fn cifar_record_planar_to_hwc() {
    let dir = tempfile::tempdir().unwrap();
    // Record 0: R = p % 256, G = 3 * p % 256, B = 255 - p % 256; record 1: R 10, G 20, B 30.
    let mut bytes = cifar_record(6, |c, p| match c {
        0 => (p % 256) as u8,
        1 => (3 * p % 256) as u8,
        _ => 255 - (p % 256) as u8,
    });
    bytes.extend(cifar_record(9, |c, _| [10, 20, 30][c]));
    let path = write(dir.path(), "b.bin", &bytes);
    let im = load_cifar10_batch(&path).unwrap();
    assert_eq!(
        (im.n, im.height, im.width, im.channels, im.binary),
        (2, 32, 32, 3, false)
    );
    let first = im.image(0);
    assert_eq!(&first[0..6], &[0, 0, 255, 1, 3, 254]); // pixels (0,0) and (0,1), RGB
    let p = 31 * 32 + 31; // pixel (31, 31): p = 1023
    assert_eq!(&first[3 * p..3 * p + 3], &[255, (3 * 1023 % 256) as u8, 0]);
    assert!(im.image(1).chunks(3).all(|px| px == [10, 20, 30]));

    let err = load_cifar10_batch(write(dir.path(), "c.bin", &bytes[..5000])).unwrap_err();
    assert!(err.to_string().contains("3073"), "{err}");
}

#[test]
fn cifar_folder_of_batches() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("cifar-10-batches-bin");
    std::fs::create_dir(&sub).unwrap();
    for i in 1..=5u8 {
        write(
            &sub,
            &format!("data_batch_{i}.bin"),
            &cifar_record(0, |_, _| i),
        );
    }
    write(
        &sub,
        "test_batch.bin",
        &cifar_record(0, |c, _| 100 + c as u8),
    );
    let d = load_dataset(&dir.path().display().to_string(), false).unwrap();
    assert_eq!((d.train.n, d.test.n, d.channels()), (5, 1, 3));
    assert!(d.train.image(3).iter().all(|&v| v == 4));
    assert_eq!(&d.test.image(0)[..3], &[100, 101, 102]);
    std::fs::remove_file(sub.join("data_batch_4.bin")).unwrap();
    let err = load_dataset(&dir.path().display().to_string(), false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("data_batch_4.bin"), "{err}");
}

// ------------------------------------------------------------------------------- embedded

#[test]
fn embedded_mnist_shape_values_and_determinism() {
    let d = embedded_mnist();
    assert_eq!(d.name, "mnist");
    for (images, n) in [(&d.train, 9000), (&d.test, 1000)] {
        assert_eq!(
            (images.n, images.height, images.width, images.channels),
            (n, 28, 28, 1)
        );
        assert!(!images.binary);
        assert_eq!(images.pixels.len(), n * 784);
        assert_eq!(*images.pixels.iter().min().unwrap(), 0);
        assert_eq!(*images.pixels.iter().max().unwrap(), 255);
        assert!(
            images.pixels.iter().any(|&v| v > 1 && v < 255),
            "not all binary"
        );
    }
    let mut levels = [false; 256];
    d.train
        .pixels
        .iter()
        .for_each(|&v| levels[v as usize] = true);
    assert!(levels.iter().all(|&l| l), "all 256 grey levels occur");
    // Checksums of data/mnist.npz as built by scripts/build_mnist_npz.py (seed 2016).
    let sum = |im: &Images| im.pixels.iter().map(|&v| v as u64).sum::<u64>();
    assert_eq!(sum(&d.train), 235_862_646);
    assert_eq!(sum(&d.test), 26_283_954);
    assert_eq!(
        &d.train.image(0)[14 * 28..15 * 28],
        &[
            0, 0, 0, 0, 0, 0, 0, 15, 207, 254, 255, 247, 158, 60, 50, 0, 20, 231, 214, 6, 0, 0, 0,
            0, 0, 0, 0, 0
        ]
    );
    assert_eq!(embedded_mnist(), d);
    assert_eq!(load_dataset("mnist", false).unwrap(), d);
}

#[test]
fn binarize_threshold_exact() {
    assert_eq!(BINARIZE_THRESHOLD, 128);
    let im = Images::new(1, 2, 3, 1, false, vec![0, 1, 126, 127, 128, 255]).unwrap();
    let b = im.binarize();
    assert!(b.binary);
    assert_eq!(b.pixels, vec![0, 0, 0, 0, 1, 1]);
    assert_eq!((b.n, b.height, b.width, b.channels), (1, 2, 3, 1));
}

#[test]
fn binarized_mnist_is_binary() {
    let d = load_dataset("binarized-mnist", false).unwrap();
    assert_eq!(d.name, "binarized-mnist");
    assert!(d.binary() && d.train.binary && d.test.binary);
    assert!(d.train.pixels.iter().chain(&d.test.pixels).all(|&v| v <= 1));
    let ones = |im: &Images| im.pixels.iter().filter(|&&v| v == 1).count();
    // Pixels >= 128 in data/mnist.npz, counted with numpy.
    assert_eq!(ones(&d.train), 935_487);
    assert_eq!(ones(&d.test), 104_242);
    let grey = embedded_mnist();
    assert_eq!(d.train, grey.train.binarize());
    assert_eq!(load_dataset("mnist", true).unwrap(), d);
}

#[test]
fn binarize_flag_on_paths() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.npy");
    let grey = Images::new(4, 1, 2, 1, false, vec![0, 127, 128, 255, 5, 200, 130, 1]).unwrap();
    save_npy_u8(&path, &grey).unwrap();
    let d = load_dataset(&path.display().to_string(), true).unwrap();
    assert!(d.binary());
    assert_eq!(d.train.pixels, vec![0, 0, 1, 1, 0, 1]);
    assert_eq!(d.test.pixels, vec![1, 0]);
    // Data that is already 0/1 is kept as it is, not thresholded to zeros.
    let zero_one = Images::new(2, 1, 2, 1, false, vec![0, 1, 1, 0]).unwrap();
    save_npy_u8(&path, &zero_one).unwrap();
    let d = load_dataset(&path.display().to_string(), true).unwrap();
    assert!(d.binary());
    assert_eq!(
        (d.train.pixels.clone(), d.test.pixels.clone()),
        (vec![0, 1], vec![1, 0])
    );
    // Without --binarize too (issue 20): 0/1 data is binary unless kept as 256 levels.
    assert!(load_dataset(&path.display().to_string(), false)
        .unwrap()
        .binary());
    assert!(!pixelrnn::data::load_dataset_as(
        &path.display().to_string(),
        pixelrnn::data::Binarize::KeepLevels
    )
    .unwrap()
    .binary());
}

#[test]
fn unknown_file_kinds_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "notes.txt", b"hello world");
    let err = load_dataset(&path.display().to_string(), false)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!(
            "{}: not a recognized dataset file",
            path.display()
        )),
        "{err}"
    );
    let path = write(dir.path(), "x.gz", &[0x1f, 0x8b, 8, 0]);
    assert!(load_dataset(&path.display().to_string(), false)
        .unwrap_err()
        .to_string()
        .contains("gunzip"));
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert!(load_dataset(&empty.display().to_string(), false).is_err());
    let err = Images::new(2, 2, 2, 1, false, vec![0; 7])
        .unwrap_err()
        .to_string();
    assert_eq!(err, "2 images of 2 x 2 x 1 need 8 bytes, found 7");
}
