//! VM migration end to end, every actor its own process: `dirbroker serve`
//! (the broker), two data-center daemons, two physical-server daemons and
//! the admin console, on the project's slapd. A real qcow2 image made by
//! `qemu-img` travels from the source server to the destination server and
//! `qemu-img compare` judges the copy; `oathtool` makes the user's OTP (HOTP, so the test never waits for a
//! time step).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use dirbroker_testbed::harness::{
    Daemon, agents_bin, dirbroker_bin, free_port, run_with_stdin, scratch_dir, serve_section, start, text,
};

const SECRET_B32: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

struct Site {
    _tmp: tempfile::TempDir,
    t: PathBuf,
    cfg: PathBuf,
    broker: Daemon,
    dc_src: Daemon,
    _dc_dest: Daemon,
    _ps_src: Daemon,
    _ps_dest: Daemon,
}

impl Site {
    fn p(&self, name: &str) -> String {
        self.t.join(name).to_str().unwrap().to_string()
    }

    /// `dirbroker migrate`, which finds the source DC's endpoint in the
    /// directory and the CA in the configuration, then runs the console.
    fn migrate(&self, vm: &str, otp: &str) -> Output {
        let mut cmd = Command::new(dirbroker_bin());
        cmd.env("DIRBROKER_CONFIG", &self.cfg)
            .args(["--output", "json", "migrate", vm, "--from", "DC-SRC", "--to", "DC-DEST"])
            .args(["--source-server", "PS-S", "--dest-server", "PS-D", "--user", "bob"])
            .args(["--k1", &self.p("k1.bundle"), "--timeout", "20"]);
        run_with_stdin(&mut cmd, &format!("{otp}\n"))
    }
}

fn dirbroker(cfg: &Path, args: &[&str]) -> Output {
    let o = Command::new(dirbroker_bin()).args(args).env("DIRBROKER_CONFIG", cfg).output().unwrap();
    assert!(o.status.success(), "dirbroker {args:?}: {}", text(&o));
    o
}

fn dc_daemon(t: &Path, bundle: &str, broker: &str, port: u16, log: &str) -> Daemon {
    let mut cmd = Command::new(agents_bin());
    cmd.args(["dc", "--bundle", t.join(bundle).to_str().unwrap(), "--broker", &format!("https://{broker}")]).args([
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--timeout",
        "20",
        "--refresh",
        "1",
    ]);
    Daemon::start(&mut cmd, t.join(log))
}

/// The user's HOTP code for `counter`, as oathtool computes it.
pub(crate) fn oathtool(counter: u64) -> String {
    let o = Command::new("oathtool").args(["--hotp", "-b", SECRET_B32, "-c", &counter.to_string()]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

/// A qcow2 image with `mib` MiB of random data, made by qemu-img.
pub(crate) fn qcow2_image(dir: &Path, name: &str, mib: usize) -> PathBuf {
    let raw = dir.join(format!("{name}.raw"));
    let mut data = vec![0u8; mib << 20];
    for (i, chunk) in data.chunks_mut(8).enumerate() {
        let x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17) ^ 0xD1B5_4A32_D192_ED03;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    std::fs::write(&raw, data).unwrap();
    let out = dir.join(name);
    let o = Command::new("qemu-img")
        .args(["convert", "-f", "raw", "-O", "qcow2", raw.to_str().unwrap(), out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "qemu-img convert: {}", text(&o));
    std::fs::remove_file(raw).unwrap();
    out
}

async fn site() -> (dirbroker_testbed::harness::Bed, Site) {
    let bed = start().await;
    let tmp = scratch_dir();
    let t = tmp.path().to_path_buf();
    let cfg = bed.dir().join("dirbroker.toml");
    let p = |name: &str| t.join(name).to_str().unwrap().to_string();
    let (dcs, dcd, pss, psd) = (free_port(), free_port(), free_port(), free_port());
    let run = |args: &[&str]| dirbroker(&cfg, args);
    run(&["ca", "init"]);
    run(&["ca", "issue", "broker", "broker-1", "--ip", "127.0.0.1", "--out", &p("broker")]);
    run(&["dc", "add", "DC-SRC", "--endpoint", &format!("127.0.0.1:{dcs}"), "--out", &p("dcs")]);
    run(&["dc", "add", "DC-DEST", "--endpoint", &format!("127.0.0.1:{dcd}"), "--out", &p("dcd")]);
    run(&[
        "ps",
        "add",
        "PS-S",
        "--dc",
        "DC-SRC",
        "--endpoint",
        &format!("127.0.0.1:{pss}"),
        "--out",
        &p("ps-s.bundle"),
    ]);
    run(&[
        "ps",
        "add",
        "PS-D",
        "--dc",
        "DC-DEST",
        "--endpoint",
        &format!("127.0.0.1:{psd}"),
        "--out",
        &p("ps-d.bundle"),
    ]);
    run(&["user", "add", "admin1", "--name", "Admin One", "--level", "4"]);
    run(&["user", "add", "bob", "--name", "Bob"]);
    run(&["psk", "add", "k1-admin1-src", "--admin", "admin1", "--dc", "DC-SRC", "--out", &p("k1.bundle")]);
    run(&["psk", "add", "speke-src-dest", "--dc", "DC-SRC", "--dc", "DC-DEST"]);
    let seed = t.join("bob.b32");
    std::fs::write(&seed, SECRET_B32).unwrap();
    std::fs::set_permissions(&seed, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    run(&["otp", "import", "bob", "--type", "hotp", "--secret-file", seed.to_str().unwrap(), "--id", "bob-hotp"]);
    let mut toml = std::fs::read_to_string(&cfg).unwrap();
    toml.push_str(&serve_section(&t.join("broker"), "crl_refresh_s = 1\n"));
    std::fs::write(&cfg, toml).unwrap();
    let broker =
        Daemon::start(Command::new(dirbroker_bin()).arg("serve").env("DIRBROKER_CONFIG", &cfg), t.join("serve.log"));
    for d in ["images-src", "images-dest"] {
        std::fs::create_dir(t.join(d)).unwrap();
    }
    let ps = |bundle: &str, port: u16, images: &str, log: &str| {
        let mut cmd = Command::new(agents_bin());
        cmd.args(["ps", "--bundle", &p(bundle), "--listen", &format!("127.0.0.1:{port}"), "--images", &p(images)]);
        Daemon::start(&mut cmd, t.join(log))
    };
    let ps_src = ps("ps-s.bundle", pss, "images-src", "ps-src.log");
    let ps_dest = ps("ps-d.bundle", psd, "images-dest", "ps-dest.log");
    let dc_dest = dc_daemon(&t, "dcd", &broker.addr, dcd, "dc-dest.log");
    let dc_src = dc_daemon(&t, "dcs", &broker.addr, dcs, "dc-src.log");
    let site = Site { _tmp: tmp, t, cfg, broker, dc_src, _dc_dest: dc_dest, _ps_src: ps_src, _ps_dest: ps_dest };
    (bed, site)
}

#[tokio::test]
async fn a_qcow2_image_migrates_between_data_centers_once_per_otp() {
    let (_bed, s) = site().await;
    let src = qcow2_image(&s.t.join("images-src"), "vm1.qcow2", 24);
    let _ = qcow2_image(&s.t.join("images-src"), "vm2.qcow2", 1);

    // The user's password alone is not an OTP: nothing starts.
    let o = s.migrate("vm1.qcow2", "correct horse battery staple");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("OTP was refused"), "{}", text(&o));

    // A fresh OTP from oathtool: the image moves, and qemu-img finds it identical.
    let code = oathtool(0);
    let o = s.migrate("vm1.qcow2", &code);
    assert_eq!(o.status.code(), Some(0), "{}\n--- dc-src\n{}", text(&o), s.dc_src.log());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let dest = s.t.join("images-dest/vm1.qcow2");
    assert_eq!(v["bytes"].as_u64().unwrap(), std::fs::metadata(&dest).unwrap().len());
    let cmp = Command::new("qemu-img")
        .args(["compare", "-f", "qcow2", "-F", "qcow2", src.to_str().unwrap(), dest.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(cmp.status.success(), "qemu-img compare: {}", text(&cmp));
    assert!(String::from_utf8_lossy(&cmp.stdout).contains("Images are identical"), "{}", text(&cmp));

    // The same OTP again (a replayed Mig_Auth_Request): refused, nothing moves.
    let o = s.migrate("vm2.qcow2", &code);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("already used") || text(&o).contains("just used"), "{}", text(&o));
    assert!(!s.t.join("images-dest/vm2.qcow2").exists());

    // The destination's certificate revoked by the CA (entry still enabled):
    // the running source DC picks the new CRL up (--refresh 1) and refuses
    // to send to it.
    dirbroker(&s.cfg, &["ca", "revoke", "--cert", &s.p("dcd/cert.pem")]);
    dirbroker::clock::sleep(std::time::Duration::from_millis(2500));
    let o = s.migrate("vm2.qcow2", &oathtool(1));
    assert_eq!(o.status.code(), Some(1), "{}\n--- dc-src\n{}", text(&o), s.dc_src.log());
    assert!(text(&o).contains("revoked"), "{}\n--- dc-src\n{}", text(&o), s.dc_src.log());
    assert!(!s.t.join("images-dest/vm2.qcow2").exists());
    assert!(s.broker.log().contains("OTP refused"), "{}", s.broker.log());

    // The broker's own certificate revoked while the data center runs (issue
    // #13 item 12: the DC's broker client used to check no CRL): the source
    // DC takes the new CRL at its next refresh and then refuses the broker,
    // so no migration is authorised through it.
    dirbroker(&s.cfg, &["ca", "revoke", "--cert", &s.p("broker/cert.pem")]);
    let start = std::time::Instant::now();
    while !s.dc_src.log().contains("refresh failed, keeping the previous credentials: broker: cannot reach") {
        assert!(start.elapsed() < std::time::Duration::from_secs(10), "--- dc-src\n{}", s.dc_src.log());
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let o = s.migrate("vm2.qcow2", &oathtool(2));
    assert_eq!(o.status.code(), Some(1), "{}\n--- dc-src\n{}", text(&o), s.dc_src.log());
    // The DC answers the console before it logs why.
    let start = std::time::Instant::now();
    while !s
        .dc_src
        .log()
        .lines()
        .any(|l| l.contains("OTP check: cannot reach") && l.contains("invalid peer certificate: Revoked"))
    {
        assert!(start.elapsed() < std::time::Duration::from_secs(5), "--- dc-src\n{}", s.dc_src.log());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(!s.t.join("images-dest/vm2.qcow2").exists());
}
