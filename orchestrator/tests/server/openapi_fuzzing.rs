//! Schemathesis (PyPI) fuzzes every documented operation of a fresh `parley serve` for a bounded
//! number of cases: no answer may be a server error or differ from its document. Server and fuzzer
//! run in a network namespace of their own with only loopback, so the addresses the fuzzer makes
//! up (webhook and calendar URLs, meeting links) reach nothing, not even a DNS server.

#[test]
fn schemathesis_finds_no_server_error_and_no_answer_outside_the_document() {
    let python = crate::helpers::api_venv_python("schemathesis");
    let st = std::path::Path::new(&python).with_file_name("st");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/fuzz_api.py");
    let work = tempfile::tempdir().expect("dir");
    let out = std::process::Command::new("unshare")
        .args(["--net", "--"])
        .arg(&python)
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_parley"))
        .arg(&st)
        .arg(work.path())
        // Cases per operation and phase: about 2,000 requests, 20 s here.
        .args(["18080", "25"])
        .output()
        .expect("run unshare (util-linux)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "schemathesis found problems, or could not run (a network namespace needs root: \
         unshare --net):\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("passed") && !stdout.contains("failed"),
        "{stdout}"
    );
}
