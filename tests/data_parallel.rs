//! Data-parallel training on the CPU: the in-process collective is exact, and N workers with
//! the same global batch give the weights of one worker (up to summation order).

use pixelrnn::backend::cpu::CpuBackend;
use pixelrnn::backend::Backend;
use pixelrnn::checkpoint::Checkpoint;
use pixelrnn::collective::{Collective, LocalGroup};
use pixelrnn::data::{Dataset, Images};
use pixelrnn::models::{ModelConfig, ModelKind};
use pixelrnn::optim::{OptimConfig, OptimizerKind};
use pixelrnn::tensor::Tensor;
use pixelrnn::train::{train_parallel, TrainConfig};
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;

fn random(seed: u64, len: usize) -> Vec<f32> {
    let mut rng = Pcg64::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(-10.0..10.0)).collect()
}

/// Runs `f(rank, collective)` on `n` threads, one per rank, and returns the results by rank.
fn on_threads<T: Send>(
    n: usize,
    f: impl Fn(usize, &dyn Collective<CpuBackend>) -> T + Sync,
) -> Vec<T> {
    let group = LocalGroup::ranks(n).unwrap();
    std::thread::scope(|s| {
        let handles: Vec<_> = group
            .iter()
            .enumerate()
            .map(|(r, c)| {
                let f = &f;
                s.spawn(move || f(r, c))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

#[test]
fn all_reduce_and_broadcast_are_exact_for_one_to_four_ranks() {
    let b = CpuBackend::new();
    for n in 1..=4 {
        for len in [1usize, 7, 1000] {
            let inputs: Vec<Vec<f32>> = (0..n)
                .map(|r| random(100 * n as u64 + r as u64, len))
                .collect();
            // Reference: the f64 sum in rank order, rounded once.
            let want: Vec<f32> = (0..len)
                .map(|i| inputs.iter().map(|v| v[i] as f64).sum::<f64>() as f32)
                .collect();
            let sums = on_threads(n, |r, c| {
                let mut t = Tensor::from_slice(&b, &[len], &inputs[r]).unwrap();
                c.all_reduce_sum(&b, &mut t).unwrap();
                t.data
            });
            for (r, got) in sums.iter().enumerate() {
                assert_eq!(got, &want, "all-reduce, {n} ranks, rank {r}, len {len}");
            }
            let root = n - 1;
            let casts = on_threads(n, |r, c| {
                let mut t = Tensor::from_slice(&b, &[len], &inputs[r]).unwrap();
                c.broadcast(&b, &mut t, root).unwrap();
                t.data
            });
            for got in &casts {
                assert_eq!(got, &inputs[root], "broadcast, {n} ranks");
            }
            let metrics = on_threads(n, |r, c| {
                let mut v = [r as f64, 1.0];
                c.all_reduce_f64(&mut v).unwrap();
                v
            });
            for got in &metrics {
                assert_eq!(got, &[(0..n).sum::<usize>() as f64, n as f64]);
            }
        }
    }
}

#[test]
fn mismatched_contributions_fail_on_every_rank_instead_of_hanging() {
    let b = CpuBackend::new();
    let results = on_threads(3, |r, c| {
        let mut t = Tensor::from_slice(&b, &[r + 1], &vec![1.0; r + 1]).unwrap();
        c.all_reduce_sum(&b, &mut t).map(|_| ())
    });
    for r in results {
        let err = r.unwrap_err().to_string();
        assert!(err.contains("contributed"), "{err}");
    }
}

fn dataset() -> Dataset {
    let mut rng = Pcg64::seed_from_u64(4);
    let px: Vec<u8> = (0..12 * 6 * 5 * 3)
        .map(|_| rng.random_range(0..=255))
        .collect();
    let imgs = Images::new(12, 6, 5, 3, false, px).unwrap();
    Dataset::new("random", imgs.clone(), imgs).unwrap()
}

fn train_config(kind: ModelKind, steps: u64) -> TrainConfig {
    TrainConfig {
        model: ModelConfig {
            kind,
            height: 6,
            width: 5,
            channels: 3,
            binary: false,
            layers: 2,
            hidden: 6,
            head: 8,
            row_kernel: 3,
            multiscale: None,
        },
        data: "random".into(),
        binarize: false,
        optim: OptimConfig {
            kind: OptimizerKind::Adam,
            lr: 3e-3,
            clip: Some(1.0),
            total_steps: steps,
            ..OptimConfig::default()
        },
        batch: 8,
        steps,
        eval_every: steps,
        eval_images: Some(4),
        seed: 9,
        recurrence: Default::default(),
        stage: None,
    }
}

/// Every tensor of a run folder's checkpoint, by name.
fn weights(dir: &std::path::Path) -> Vec<(String, Vec<f32>)> {
    let b = CpuBackend::new();
    let ck = Checkpoint::open(&dir.join("checkpoint.safetensors")).unwrap();
    let mut model = ck.load_model(&b).unwrap();
    model
        .params_mut()
        .into_iter()
        .map(|p| (p.name.clone(), p.value.to_vec(&b).unwrap()))
        .collect()
}

fn max_rel_diff(a: &[(String, Vec<f32>)], b: &[(String, Vec<f32>)]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|((na, va), (nb, vb))| {
            assert_eq!(na, nb);
            let num: f64 = va
                .iter()
                .zip(vb)
                .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
                .sum();
            let den: f64 = va.iter().map(|x| (*x as f64).powi(2)).sum();
            (num / den.max(1e-30)).sqrt()
        })
        .fold(0.0, f64::max)
}

/// Tolerance: the workers sum the same per-image gradients in a different order (per shard,
/// then across shards in f64), a few ulp per step; over 4 Adam steps that stays below 1e-5
/// relative, while a wrong shard, scale or missing reduction moves weights by ~1e-3.
const DP_REL_TOL: f64 = 2e-5;

#[test]
fn two_and_four_workers_match_one_worker() {
    let data = dataset();
    let b = CpuBackend::new();
    for kind in [ModelKind::PixelCnn, ModelKind::RowLstm] {
        let cfg = train_config(kind, 4);
        let run = |workers: usize| {
            let dir = tempfile::tempdir().unwrap();
            train_parallel(&b, &cfg, &data, dir.path(), None, workers, &mut |_| {}).unwrap();
            (weights(dir.path()), dir)
        };
        let (one, _d1) = run(1);
        for workers in [2, 4] {
            let (many, _d) = run(workers);
            let diff = max_rel_diff(&one, &many);
            assert!(
                diff < DP_REL_TOL,
                "{kind:?} {workers} workers: rel diff {diff:.2e}"
            );
        }
        // The comparison can fail: a different batch order moves the weights far.
        let mut other = cfg.clone();
        other.seed += 1;
        let dir = tempfile::tempdir().unwrap();
        train_parallel(&b, &other, &data, dir.path(), None, 2, &mut |_| {}).unwrap();
        assert!(max_rel_diff(&one, &weights(dir.path())) > 1e-3);
    }
}

#[test]
fn resume_with_another_worker_count_continues_the_same_run() {
    let data = dataset();
    let b = CpuBackend::new();
    let full = train_config(ModelKind::PixelCnn, 4);
    let straight = tempfile::tempdir().unwrap();
    train_parallel(&b, &full, &data, straight.path(), None, 1, &mut |_| {}).unwrap();

    let split = tempfile::tempdir().unwrap();
    let mut first = full.clone();
    first.steps = 2;
    first.eval_every = 2;
    train_parallel(&b, &first, &data, split.path(), None, 2, &mut |_| {}).unwrap();
    let ck = Checkpoint::open(&split.path().join("checkpoint.safetensors")).unwrap();
    let mut second = full.clone();
    second.eval_every = 2;
    train_parallel(&b, &second, &data, split.path(), Some(&ck), 4, &mut |_| {}).unwrap();
    let diff = max_rel_diff(&weights(straight.path()), &weights(split.path()));
    assert!(diff < DP_REL_TOL, "rel diff {diff:.2e}");
}

#[test]
fn more_workers_than_images_per_batch_is_a_clear_error() {
    let data = dataset();
    let cfg = train_config(ModelKind::PixelCnn, 1);
    let dir = tempfile::tempdir().unwrap();
    let err = train_parallel(
        &CpuBackend::new(),
        &cfg,
        &data,
        dir.path(),
        None,
        9,
        &mut |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("--workers 9"), "{err}");
    let _ = CpuBackend::new().name();
}

/// A group spanning "processes": two threads each run `train_ranks` with one rank of a
/// 2-rank group, as two processes with one GPU each would. Global rank 0 alone writes its run
/// folder, rank 1 writes nothing, and the weights equal one worker's.
#[test]
fn one_rank_per_process_matches_one_worker_and_only_rank_zero_writes() {
    use pixelrnn::train::train_ranks;
    let data = dataset();
    let b = CpuBackend::new();
    let cfg = train_config(ModelKind::PixelCnn, 3);
    let single = tempfile::tempdir().unwrap();
    train_parallel(&b, &cfg, &data, single.path(), None, 1, &mut |_| {}).unwrap();

    let group = LocalGroup::ranks(2).unwrap();
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let outs: Vec<_> = dirs.iter().map(|d| d.path().join("run")).collect();
    std::thread::scope(|s| {
        for (c, out) in group.iter().zip(&outs) {
            let (b, cfg, data) = (&b, &cfg, &data);
            s.spawn(move || {
                let ranks: Vec<&dyn Collective<CpuBackend>> = vec![c];
                train_ranks(
                    std::slice::from_ref(b),
                    &ranks,
                    cfg,
                    data,
                    out,
                    None,
                    &mut |_| {},
                )
                .unwrap()
            });
        }
    });
    let diff = max_rel_diff(&weights(single.path()), &weights(&outs[0]));
    assert!(diff < DP_REL_TOL, "rel diff {diff:.2e}");
    assert!(!outs[1].exists(), "rank 1 must not write a run folder");
}

/// The bucketed all-reduce (all gradients in one exchange) gives the per-tensor results.
#[test]
fn bucketed_all_reduce_equals_one_call_per_tensor() {
    let b = CpuBackend::new();
    let sizes = [1usize, 7, 300];
    for n in 1..=4 {
        let data: Vec<Vec<Vec<f32>>> = (0..n)
            .map(|r| {
                sizes
                    .iter()
                    .enumerate()
                    .map(|(i, &len)| random(1000 * r as u64 + i as u64, len))
                    .collect()
            })
            .collect();
        let bucketed = on_threads(n, |r, c| {
            let mut ts: Vec<Tensor<CpuBackend>> = data[r]
                .iter()
                .map(|v| Tensor::from_slice(&b, &[v.len()], v).unwrap())
                .collect();
            let mut refs: Vec<&mut Tensor<CpuBackend>> = ts.iter_mut().collect();
            c.all_reduce_sum_all(&b, &mut refs).unwrap();
            ts.into_iter().map(|t| t.data).collect::<Vec<_>>()
        });
        let single = on_threads(n, |r, c| {
            data[r]
                .iter()
                .map(|v| {
                    let mut t = Tensor::from_slice(&b, &[v.len()], v).unwrap();
                    c.all_reduce_sum(&b, &mut t).unwrap();
                    t.data
                })
                .collect::<Vec<_>>()
        });
        assert_eq!(bucketed, single, "{n} ranks");
        if n > 1 {
            assert_ne!(bucketed[0], data[0], "{n} ranks: nothing was summed");
        }
    }
}
