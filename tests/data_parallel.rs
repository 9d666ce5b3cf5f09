//! Data-parallel training on the CPU: the in-process collective is exact, and N workers with
//! the same global batch give the weights of one worker (up to summation order).

mod common;

use pixelrnn::backend::cpu::CpuBackend;
use pixelrnn::backend::Backend;
use pixelrnn::checkpoint::Checkpoint;
use pixelrnn::collective::{Collective, LocalGroup};
use pixelrnn::data::{Dataset, Images};
use pixelrnn::models::{ModelConfig, ModelKind};
use pixelrnn::optim::{OptimConfig, OptimizerKind};
use pixelrnn::parity::l2_rel_err;
use pixelrnn::tensor::Tensor;
use pixelrnn::train::{train_parallel, TrainConfig};
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;

use common::helpers::{rng, uniform};

fn random(seed: u64, len: usize) -> Vec<f32> {
    uniform(&mut rng(seed), len, -10.0, 10.0)
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
            likelihood: pixelrnn::models::Likelihood::Softmax,
            classes: None,
        },
        data: "random".into(),
        binarize: pixelrnn::data::Binarize::Auto,
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
        precision: Default::default(),
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

/// The largest [`l2_rel_err`] over the tensors of two runs (the same names in the same order),
/// with `a` as the reference.
fn max_rel_diff(a: &[(String, Vec<f32>)], b: &[(String, Vec<f32>)]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|((na, va), (nb, vb))| {
            assert_eq!(na, nb);
            l2_rel_err(vb, va)
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

// --- Overlapping the gradient all-reduce with the backward (GradSync) ---

/// Models of every kind (multi-scale included) on 8x8x3 images, and a batch for them.
fn overlap_models() -> (Vec<(&'static str, ModelConfig)>, Dataset) {
    use pixelrnn::models::MultiScaleConfig;
    let plain = |kind| ModelConfig::plain(kind, (8, 8, 3), false, (2, 4, 8));
    let multiscale = ModelConfig {
        kind: ModelKind::MultiScale,
        multiscale: Some(MultiScaleConfig {
            base: ModelKind::PixelCnn,
            scale: 4,
            cond_features: 3,
        }),
        ..plain(ModelKind::MultiScale)
    };
    let mut rng = Pcg64::seed_from_u64(21);
    let px: Vec<u8> = (0..4 * 8 * 8 * 3)
        .map(|_| rng.random_range(0..=255))
        .collect();
    let imgs = Images::new(4, 8, 8, 3, false, px).unwrap();
    (
        vec![
            ("pixelcnn", plain(ModelKind::PixelCnn)),
            ("row_lstm", plain(ModelKind::RowLstm)),
            ("diag_bilstm", plain(ModelKind::DiagBiLstm)),
            ("multiscale", multiscale),
        ],
        Dataset::new("random", imgs.clone(), imgs).unwrap(),
    )
}

/// Every parameter's gradient is final when the backward hands it over: its value then equals
/// its value once the whole backward is done, every parameter is handed over exactly once, the
/// head first and the input layer last. (Handing a layer over before its backward would give
/// the zero gradients of a fresh model here.)
#[test]
fn backward_hands_over_each_layers_gradients_once_and_final() {
    use pixelrnn::models::{Model, Stages};
    let b = CpuBackend::new();
    let (models, data) = overlap_models();
    for (label, cfg) in models {
        let mut model = Model::new(&b, cfg, 5).unwrap();
        let mut handed: Vec<Vec<(String, Vec<f32>)>> = Vec::new();
        model
            .train_batch_with(&b, &data.train, &[0, 1, 2], 0.01, Stages::Both, &mut |ps| {
                handed.push(
                    ps.iter()
                        .map(|p| (p.name.clone(), p.grad.to_vec(&b).unwrap()))
                        .collect(),
                );
                Ok(())
            })
            .unwrap();
        let finals: std::collections::BTreeMap<String, Vec<f32>> = model
            .params_mut()
            .into_iter()
            .map(|p| (p.name.clone(), p.grad.to_vec(&b).unwrap()))
            .collect();
        let mut seen = std::collections::BTreeSet::new();
        for (name, at_hand_over) in handed.iter().flatten() {
            assert!(
                seen.insert(name.clone()),
                "{label}: {name} handed over twice"
            );
            assert_eq!(
                at_hand_over, &finals[name],
                "{label}: {name} changed after it was handed over"
            );
        }
        let all: std::collections::BTreeSet<String> = finals.keys().cloned().collect();
        assert_eq!(seen, all, "{label}: parameters never handed over");
        let nonzero = finals
            .values()
            .filter(|g| g.iter().any(|&x| x != 0.0))
            .count();
        assert!(
            nonzero * 2 > finals.len(),
            "{label}: the gradients are mostly zero"
        );
        // Stage 2 (or the only stage) ends with its input layer, after its head.
        let names: Vec<&String> = handed.iter().flatten().map(|(n, _)| n).collect();
        let last = names.last().unwrap();
        assert!(last.contains("input"), "{label}: last handed over: {last}");
        let first_head = names.iter().position(|n| n.contains("head")).unwrap();
        let first_input = names.iter().position(|n| n.contains("input")).unwrap();
        assert!(first_head < first_input, "{label}: {names:?}");
        assert!(handed.len() >= 4, "{label}: {} buckets", handed.len());
    }
}

/// A data-parallel step with the overlapped all-reduce gives bit for bit the gradients of the
/// blocking all-reduce after the backward, for every model and for a multi-scale step that
/// trains one stage only (whose other stage's gradients are summed at the end).
#[test]
fn overlapped_all_reduce_equals_the_all_reduce_after_backward() {
    use pixelrnn::models::{Model, Stages};
    use pixelrnn::train::GradSync;
    let b = CpuBackend::new();
    let (models, data) = overlap_models();
    let mut cases: Vec<(&str, ModelConfig, Stages)> = models
        .iter()
        .map(|(l, c)| (*l, c.clone(), Stages::Both))
        .collect();
    let ms = models[3].1.clone();
    cases.push(("multiscale stage 1", ms.clone(), Stages::One));
    cases.push(("multiscale stage 2", ms, Stages::Two));
    for (label, cfg, stages) in cases {
        let shards = [[0usize, 1], [2, 3]];
        let grads = |overlap: bool| {
            on_threads(2, |r, c| {
                let mut m = Model::new(&b, cfg.clone(), 5).unwrap();
                if overlap {
                    let mut sync = GradSync::new(&b, c);
                    m.train_batch_with(&b, &data.train, &shards[r], 0.01, stages, &mut |ps| {
                        sync.submit(ps)
                    })
                    .unwrap();
                    assert!(sync.buckets() >= 4, "{label}: {} buckets", sync.buckets());
                    sync.finish(m.params_mut()).unwrap();
                } else {
                    m.train_batch(&b, &data.train, &shards[r], 0.01, stages)
                        .unwrap();
                    let mut params = m.params_mut();
                    let mut g: Vec<&mut Tensor<CpuBackend>> =
                        params.iter_mut().map(|p| &mut p.grad).collect();
                    c.all_reduce_sum_all(&b, &mut g).unwrap();
                }
                m.params_mut()
                    .into_iter()
                    .map(|p| (p.name.clone(), p.grad.to_vec(&b).unwrap()))
                    .collect::<Vec<_>>()
            })
        };
        let (after, overlapped) = (grads(false), grads(true));
        assert_eq!(overlapped[0], overlapped[1], "{label}: ranks disagree");
        assert_eq!(
            overlapped[0], after[0],
            "{label}: overlapped != after backward"
        );
        // The sums can differ from one rank's own gradients (it did sum something).
        let mut own = Model::new(&b, cfg.clone(), 5).unwrap();
        own.train_batch(&b, &data.train, &shards[0], 0.01, stages)
            .unwrap();
        let own: Vec<Vec<f32>> = own
            .params_mut()
            .into_iter()
            .map(|p| p.grad.to_vec(&b).unwrap())
            .collect();
        let summed: Vec<Vec<f32>> = overlapped[0].iter().map(|(_, g)| g.clone()).collect();
        assert_ne!(own, summed, "{label}: nothing was summed");
    }
}

/// A started bucket is exchanged by the rank's helper thread while the rank itself goes on
/// (here: without ever waiting), and a blocking call while one is in flight is refused
/// instead of pairing with another rank's bucket.
#[test]
fn started_buckets_complete_in_the_background_in_order() {
    use pixelrnn::collective::Started;
    use std::time::{Duration, Instant};
    let b = CpuBackend::new();
    let group = LocalGroup::ranks(2).unwrap();
    let inputs: Vec<Vec<Vec<f32>>> = (0..2)
        .map(|r| {
            (0..3)
                .map(|k| random(50 + 10 * r + k, 5 + k as usize))
                .collect()
        })
        .collect();
    // Rank 0 starts its first bucket alone: it waits for rank 1, so a blocking call is refused.
    let mut t0 = Tensor::from_slice(&b, &[5], &inputs[0][0]).unwrap();
    let first0 =
        Collective::<CpuBackend>::start_all_reduce_sum_all(&group[0], &b, &mut [&mut t0]).unwrap();
    assert_eq!(group[0].in_flight(), 1);
    let err = Collective::<CpuBackend>::all_reduce_f64(&group[0], &mut [1.0])
        .unwrap_err()
        .to_string();
    assert!(err.contains("in flight"), "{err}");
    // Both ranks start three buckets each from this thread, never waiting in between: only
    // helper threads can complete them.
    let mut receivers = vec![Vec::new(), Vec::new()];
    receivers[0].push(first0);
    for (r, c) in group.iter().enumerate() {
        let already = receivers[r].len();
        for v in &inputs[r][already..] {
            let mut t = Tensor::from_slice(&b, &[v.len()], v).unwrap();
            receivers[r].push(
                Collective::<CpuBackend>::start_all_reduce_sum_all(c, &b, &mut [&mut t]).unwrap(),
            );
        }
    }
    let start = Instant::now();
    while group.iter().any(|c| c.in_flight() > 0) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "buckets never completed"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    for (r, rx) in receivers.into_iter().enumerate() {
        assert_eq!(rx.len(), 3);
        for (k, started) in rx.into_iter().enumerate() {
            let Started::Host(sums) = started else {
                panic!("a local group sums on its helper thread");
            };
            let want: Vec<f32> = (0..inputs[0][k].len())
                .map(|i| (inputs[0][k][i] as f64 + inputs[1][k][i] as f64) as f32)
                .collect();
            assert_eq!(sums.recv().unwrap().unwrap(), want, "rank {r} bucket {k}");
        }
    }
    // Idle again: blocking calls work.
    let metrics: Vec<[f64; 1]> = std::thread::scope(|s| {
        let hs: Vec<_> = group
            .iter()
            .map(|c| {
                s.spawn(move || {
                    let mut v = [2.0];
                    Collective::<CpuBackend>::all_reduce_f64(c, &mut v).unwrap();
                    v
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(metrics, [[4.0], [4.0]]);
}

/// A rank that fails half-way through its backward (after starting one bucket) stops the
/// group: the other rank's pending buckets and its finish fail instead of waiting forever.
/// (Detached threads: without the abort this test fails on its timeout rather than hanging.)
#[test]
fn a_rank_failing_mid_backward_fails_the_others_instead_of_hanging() {
    use pixelrnn::nn::Param;
    use pixelrnn::train::GradSync;
    let (tx, rx) = std::sync::mpsc::channel();
    for (r, c) in LocalGroup::ranks(2).unwrap().into_iter().enumerate() {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let b = CpuBackend::new();
            let param = |name: &str, seed: u64| {
                let v = random(seed, 6);
                let mut p = Param::new(&b, name.into(), &[6], &v).unwrap();
                p.grad = Tensor::from_slice(&b, &[6], &v).unwrap();
                p
            };
            let mut ps = [param("a", 1 + r as u64), param("b", 3 + r as u64)];
            let mut sync = GradSync::new(&b, &c);
            let result = (|| {
                let [pa, pb] = &mut ps;
                sync.submit(vec![pa])?;
                if r == 1 {
                    // What train_ranks does when a rank's step fails: abort the group.
                    Collective::<CpuBackend>::abort(&c);
                    return Err(pixelrnn::Error::Config("rank 1 failed".into()));
                }
                sync.submit(vec![pb])?;
                sync.finish(ps.iter_mut().collect())
            })();
            let _ = tx.send((r, result.map_err(|e| e.to_string())));
        });
    }
    drop(tx);
    let mut results: Vec<(usize, Result<(), String>)> = (0..2)
        .map(|_| {
            rx.recv_timeout(std::time::Duration::from_secs(20))
                .expect("a rank hung after another failed")
        })
        .collect();
    results.sort_by_key(|r| r.0);
    assert!(results[0].1.is_err(), "rank 0 must fail: {:?}", results[0]);
    assert_eq!(
        results[1].1,
        Err("invalid configuration: rank 1 failed".into())
    );
}
