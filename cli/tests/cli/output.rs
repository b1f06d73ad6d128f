//! `--output json`: whatever happens, stdout holds exactly one JSON document.

use crate::support::{code, dirbroker, stdout};

/// Every JSON document on stdout, in order.
fn documents(out: &str) -> Vec<serde_json::Value> {
    serde_json::Deserializer::from_str(out).into_iter::<serde_json::Value>().map(|d| d.unwrap()).collect()
}

#[test]
fn usage_error_with_output_json_is_one_json_document_and_exit_2() {
    for args in [&["user", "show", "--output", "json", "--no-such-flag"][..], &["--output=json", "no-such-command"][..]]
    {
        let o = dirbroker(args, None, "");
        assert_eq!(code(&o), 2, "{args:?}");
        let docs = documents(&stdout(&o));
        assert_eq!(docs.len(), 1, "{args:?}: {}", stdout(&o));
        assert_eq!(docs[0]["exit_code"], 2);
        let error = docs[0]["error"].as_str().unwrap();
        assert!(error.contains("no-such"), "{error}");
        assert!(!error.starts_with("error:"), "{error}");
    }
    // Without --output json, clap's text stays on stderr and stdout is empty.
    let o = dirbroker(&["user", "show", "--no-such-flag"], None, "");
    assert_eq!(code(&o), 2);
    assert_eq!(stdout(&o), "");
}

#[test]
fn export_refuses_output_json_instead_of_writing_ldif() {
    let o = dirbroker(&["export", "--output", "json"], None, "");
    assert_eq!(code(&o), 2);
    let out = stdout(&o);
    assert!(!out.contains("version: 1"), "no LDIF: {out}");
    let docs = documents(&out);
    assert_eq!(docs.len(), 1, "{out}");
    assert_eq!(docs[0]["exit_code"], 2);
    assert!(docs[0]["error"].as_str().unwrap().contains("--output json is not supported"), "{out}");
}

#[test]
fn help_lists_exit_codes_and_service_examples() {
    let top = dirbroker(&["--help"], None, "");
    assert_eq!(code(&top), 0);
    let top = stdout(&top);
    assert!(top.contains("Exit codes: 0 success"), "{top}");
    assert!(top.contains("5 access denied by the directory"), "{top}");
    for (cmd, example) in [
        ("list", "dirbroker service list\n  dirbroker service list --output json"),
        ("remove", "dirbroker service remove wiki"),
    ] {
        let o = dirbroker(&["service", cmd, "--help"], None, "");
        assert_eq!(code(&o), 0);
        assert!(stdout(&o).contains(&format!("Examples:\n  {example}")), "{}", stdout(&o));
    }
}

#[test]
fn broker_url_lists_that_are_not_https_host_port_each_once_are_usage_errors() {
    for (list, says) in [
        ("http://127.0.0.1:1", "a base URL is https://HOST:PORT"),
        ("https://127.0.0.1:1/v1", "without a path"),
        ("https://a:1,https://a:1", "named twice"),
        ("https://user@a:1", "without a path"),
        (",", "no base URL given"),
    ] {
        let o = dirbroker(&["login", "alice", "--broker", list, "--ca", "/nonexistent/ca.pem"], None, "");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(code(&o), 2, "{list}: {err}");
        assert!(err.contains(says), "{list}: {err}");
    }
}
