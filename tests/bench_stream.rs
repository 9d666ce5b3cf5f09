//! `pixelrnn bench --json` streams: each row's line is printed (stderr) as soon as it is
//! measured, after the JSON file was rewritten with it, atomically. A bench killed right after
//! its first training-step row leaves a JSON file that parses and holds that row, marked
//! incomplete (what a device phase cut off at its time limit returns). About 3 s: the CPU
//! ceilings, then one MNIST-size Row LSTM step row before the kill.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn a_bench_killed_after_its_first_row_leaves_valid_json() {
    let dir = std::env::temp_dir().join(format!("pixelrnn-bench-kill-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("bench.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_pixelrnn"))
        .args([
            "bench",
            "--device",
            "cpu",
            "--part",
            "steps",
            "--config",
            "mnist",
            "--model",
            "row-lstm",
            "--recurrence",
            "all",
            "--iters",
            "1",
            "--step-iters",
            "1",
            "--warmup",
            "0",
            "--threads",
            "1",
            "--json",
        ])
        .arg(&json)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start pixelrnn bench");
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    for line in stderr.lines() {
        let line = line.unwrap();
        seen.push(line.clone());
        if line.starts_with("row-lstm train step") {
            break;
        }
    }
    child.kill().expect("kill the bench");
    child.wait().unwrap();
    let first = seen
        .iter()
        .find(|l| l.starts_with("row-lstm train step"))
        .unwrap_or_else(|| panic!("no step row was streamed; stderr:\n{}", seen.join("\n")));
    assert!(first.contains(" ok"), "{first}");
    let text = std::fs::read_to_string(&json).expect("the JSON file exists after the first row");
    let v: serde_json::Value = serde_json::from_str(&text).expect("the JSON parses");
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(v["complete"], serde_json::Value::Bool(false), "{text}");
    let rows = v["rows"].as_array().expect("rows");
    let steps: Vec<_> = rows.iter().filter(|r| r["kind"] == "step").collect();
    assert_eq!(steps.len(), 1, "killed after the first step row: {text}");
    assert_eq!(steps[0]["variant"], "fused", "fused is timed first");
    assert!(steps[0]["ms"].as_f64().is_some_and(|ms| ms > 0.0), "{text}");
    assert!(rows.iter().any(|r| r["kind"] == "ceiling"), "{text}");
}
