//! The benchmark program's command line: every benchmark is listed, and a folder that is not a
//! meeting gets an error that says what is missing instead of a table of zeros.

use std::process::Command;

fn bench(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_parley-bench"))
        .args(args)
        .output()
        .expect("parley-bench runs")
}

#[test]
fn help_lists_every_benchmark() {
    let out = bench(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for name in ["asr", "fleet", "ingest", "captions", "summary"] {
        assert!(
            help.lines().any(|l| l.trim_start().starts_with(name)),
            "{name} missing from:\n{help}"
        );
    }
}

#[test]
fn a_folder_without_a_reference_is_refused_with_its_path() {
    let dir = tempfile::tempdir().expect("dir");
    let out = bench(&["asr", dir.path().to_str().expect("utf-8 path")]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("reference.json"), "{err}");
}
