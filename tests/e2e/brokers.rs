//! Several `dirbroker serve` side by side on one replicated directory, and
//! everything that talks to a broker given both URLs (`--broker A,B`): the
//! data-center daemons, AMS, ANS, `dirbroker register` and `login`. The
//! first broker is hung (SIGSTOP), then killed: registration through AMS and
//! ANS, a login with an OTP code and a migration (the data center's OTP
//! verification) go through the second, and the hung one costs each
//! process one connection timeout, not one per request.

use std::path::Path;
use std::process::{Command, Output};

use dirbroker_testbed::cluster::{Cluster, ClusterOptions};
use dirbroker_testbed::harness::{
    Daemon, agents_bin, dirbroker_bin, free_port, run_with_stdin, scratch_dir, serve_section, text,
};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::migration::{oathtool, qcow2_image};

const PASSWORD: &str = "alice's long password";

fn dirbroker(cfg: &Path, args: &[&str]) -> Output {
    let o = Command::new(dirbroker_bin()).args(args).env("DIRBROKER_CONFIG", cfg).output().unwrap();
    assert!(o.status.success(), "dirbroker {args:?}: {}", text(&o));
    o
}

/// How many lines of `log` say `url` could not be reached.
fn unreachable_lines(log: &str, url: &str) -> usize {
    log.lines().filter(|l| l.contains(&format!("cannot reach {url}"))).count()
}

fn signal(d: &Daemon, sig: Signal) {
    kill(Pid::from_raw(i32::try_from(d.pid()).unwrap()), sig).unwrap();
}

#[tokio::test]
async fn every_client_fails_over_to_the_second_broker_and_a_hung_one_costs_one_timeout() {
    let scratch = scratch_dir();
    let t = scratch.path().to_path_buf();
    let c = Cluster::start(ClusterOptions::new(t.join("c"), 2)).await.unwrap();
    let cfg = c.dir().join("dirbroker.toml");
    let p = |name: &str| t.join(name).to_str().unwrap().to_string();
    let run = |args: &[&str]| dirbroker(&cfg, args);
    let ports: Vec<u16> = (0..6).map(|_| free_port()).collect();
    let (dcs, dcd, pss, psd, ams_port, ans_port) = (ports[0], ports[1], ports[2], ports[3], ports[4], ports[5]);
    run(&["ca", "init"]);
    run(&["ca", "issue", "broker", "broker-1", "--ip", "127.0.0.1", "--out", &p("broker")]);
    run(&["dc", "add", "DC-SRC", "--endpoint", &format!("127.0.0.1:{dcs}"), "--out", &p("dcs")]);
    run(&["dc", "add", "DC-DEST", "--endpoint", &format!("127.0.0.1:{dcd}"), "--out", &p("dcd")]);
    run(&["ps", "add", "PS-S", "--dc", "DC-SRC", "--endpoint", &format!("127.0.0.1:{pss}"), "--out", &p("ps-s")]);
    run(&["ps", "add", "PS-D", "--dc", "DC-DEST", "--endpoint", &format!("127.0.0.1:{psd}"), "--out", &p("ps-d")]);
    run(&["agent", "add", "ans", "ans-1", "--endpoint", &format!("127.0.0.1:{ans_port}"), "--out", &p("ans")]);
    run(&["agent", "add", "ams", "ams-1", "--endpoint", &format!("127.0.0.1:{ams_port}"), "--out", &p("ams")]);
    run(&["user", "add", "admin1", "--name", "Admin One", "--level", "4"]);
    run(&["user", "add", "bob", "--name", "Bob"]);
    run(&["user", "add", "alice", "--name", "Alice"]);
    run(&["psk", "add", "k1-admin1-src", "--admin", "admin1", "--dc", "DC-SRC", "--out", &p("k1.bundle")]);
    run(&["psk", "add", "speke-src-dest", "--dc", "DC-SRC", "--dc", "DC-DEST"]);
    let seed = dirbroker_testbed::harness::secret_file(&t, "seed.b32", "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", 0o600);
    for uid in ["bob", "alice"] {
        let id = format!("{uid}-hotp");
        run(&["otp", "import", uid, "--type", "hotp", "--secret-file", seed.to_str().unwrap(), "--id", &id]);
    }
    let toml = std::fs::read_to_string(&cfg).unwrap().replace(
        "[sso]\n",
        &format!(
            "[sso]\nams_url = \"https://127.0.0.1:{ams_port}\"\nans_url = \"https://127.0.0.1:{ans_port}\"\n\
             kdf_memory_kib = 19456\nkdf_iterations = 2\n"
        ),
    );
    let toml = format!("{toml}{}", serve_section(&t.join("broker"), ""));
    std::fs::write(&cfg, toml).unwrap();
    run(&["sso", "init"]);
    let serve = |log: &str| {
        Daemon::start(Command::new(dirbroker_bin()).arg("serve").env("DIRBROKER_CONFIG", &cfg), t.join(log))
    };
    let (a, b) = (serve("serve-a.log"), serve("serve-b.log"));
    let (url_a, url_b) = (a.https_url(""), b.https_url(""));
    let brokers = format!("{url_a},{url_b}");

    // A hangs: it takes TCP connections in the kernel and answers nothing.
    signal(&a, Signal::SIGSTOP);
    let daemon = |args: &[&str], log: &str| {
        let mut cmd = Command::new(agents_bin());
        cmd.args(args);
        Daemon::start(&mut cmd, t.join(log))
    };
    let with_brokers = |role: &str, bundle: &str, port: u16, log: &str| {
        daemon(&[role, "--bundle", &p(bundle), "--broker", &brokers, "--listen", &format!("127.0.0.1:{port}")], log)
    };
    let _ans = with_brokers("ans", "ans", ans_port, "ans.log");
    let _ams = with_brokers("ams", "ams", ams_port, "ams.log");
    let _dc_dest = with_brokers("dc", "dcd", dcd, "dc-dest.log");
    let dc_src = with_brokers("dc", "dcs", dcs, "dc-src.log");
    for d in ["images-src", "images-dest"] {
        std::fs::create_dir(t.join(d)).unwrap();
    }
    let ps = |bundle: &str, port: u16, images: &str, log: &str| {
        daemon(&["ps", "--bundle", &p(bundle), "--listen", &format!("127.0.0.1:{port}"), "--images", &p(images)], log)
    };
    let _ps_src = ps("ps-s", pss, "images-src", "ps-src.log");
    let _ps_dest = ps("ps-d", psd, "images-dest", "ps-dest.log");
    let migrate = |vm: &str, otp: &str| {
        let mut cmd = Command::new(dirbroker_bin());
        cmd.env("DIRBROKER_CONFIG", &cfg)
            .args(["--output", "json", "migrate", vm, "--from", "DC-SRC", "--to", "DC-DEST"])
            .args(["--source-server", "PS-S", "--dest-server", "PS-D", "--user", "bob"])
            .args(["--k1", &p("k1.bundle"), "--timeout", "20"]);
        run_with_stdin(&mut cmd, &format!("{otp}\n"))
    };
    qcow2_image(&t.join("images-src"), "vm1.qcow2", 1);
    qcow2_image(&t.join("images-src"), "vm2.qcow2", 1);

    // The data center's OTP verification, and everything else it asked,
    // went to B; A cost it one timeout, at its first request.
    let o = migrate("vm1.qcow2", &oathtool(0));
    assert_eq!(o.status.code(), Some(0), "{}\n--- dc-src\n{}", text(&o), dc_src.log());
    assert!(t.join("images-dest/vm1.qcow2").exists());
    assert!(b.log().contains("OTP accepted"), "{}", b.log());
    assert_eq!(unreachable_lines(&dc_src.log(), &url_a), 1, "{}", dc_src.log());

    // Registration: the broker B asks AMS and ANS, ANS forwards the share to B.
    let invite = t.join("alice.invite");
    run(&["user", "invite", "alice", "--out", invite.to_str().unwrap()]);
    let mut cmd = Command::new(dirbroker_bin());
    cmd.args(["register", "alice", "--broker", &brokers, "--ca", &p("broker/ca.pem")])
        .args(["--invite-file", invite.to_str().unwrap()])
        .env("DIRBROKER_CONFIG", "/nonexistent");
    let o = run_with_stdin(&mut cmd, &format!("{PASSWORD}\n"));
    assert!(o.status.success(), "{}\n--- ans\n{}", text(&o), _ans.log());
    assert!(String::from_utf8_lossy(&o.stdout).contains("registered alice for SSO"), "{}", text(&o));

    // A login asks three things (JWKS, parameters, login): A costs it one timeout.
    let pw = dirbroker_testbed::harness::secret_file(&t, "alice.pw", PASSWORD, 0o600);
    let login = |code: &str, ccache: &str| {
        let otp = dirbroker_testbed::harness::secret_file(&t, "alice.otp", code, 0o600);
        Command::new(dirbroker_bin())
            .args(["login", "alice", "--broker", &url_a, "--broker", &url_b, "--ca", &p("broker/ca.pem")])
            .args(["--password-file", pw.to_str().unwrap(), "--otp-file", otp.to_str().unwrap()])
            .env("DIRBROKER_CCACHE", p(ccache))
            .env("DIRBROKER_CONFIG", "/nonexistent")
            .output()
            .unwrap()
    };
    let o = login(&oathtool(0), "cc1");
    assert!(String::from_utf8_lossy(&o.stdout).contains("logged in as alice"), "{}", text(&o));
    assert_eq!(unreachable_lines(&String::from_utf8_lossy(&o.stderr), &url_a), 1, "{}", text(&o));
    // The cache keeps both URLs, for `dirbroker ticket get`.
    let cc: serde_json::Value = serde_json::from_slice(&std::fs::read(t.join("cc1")).unwrap()).unwrap();
    assert_eq!(cc["broker"], serde_json::json!([url_a, url_b]));

    // A is killed: a refused connection moves every client on at once.
    signal(&a, Signal::SIGKILL);
    let o = login(&oathtool(1), "cc2");
    assert!(String::from_utf8_lossy(&o.stdout).contains("logged in as alice"), "{}", text(&o));
    let o = migrate("vm2.qcow2", &oathtool(1));
    assert_eq!(o.status.code(), Some(0), "{}\n--- dc-src\n{}", text(&o), dc_src.log());
    // The code just used, again: refused by B, whatever broker is asked.
    let o = login(&oathtool(1), "cc3");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));

    c.wait_converged(std::time::Duration::from_secs(30)).await.unwrap();
    assert!(c.compare().await.unwrap().is_empty());
}
