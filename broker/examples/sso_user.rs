//! Helper for bench/tickets.sh (not part of the CLI; registration proper is
//! `dirbroker register` through AMS/ANS): writes a user with P_c = g^pw,
//! the KDF record and a level, pw derived from the password with the
//! production Argon2id parameters (64 MiB, t=3).
//!
//!   sso_user CONFIG UID PASSWORD_FILE

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use dirbroker::directory::Directory;
use dirbroker::model::User;
use dirbroker_proto::api::sso::PasswordKdf;
use dirbroker_proto::sso::kdf::{KdfParams, derive_pw};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let config = dirbroker::config::Config::load(std::path::Path::new(&args[1])).unwrap();
    let dir = Directory::connect(config.directory_config().unwrap()).await.unwrap();
    let password = std::fs::read_to_string(&args[3]).unwrap();
    let password = password.trim_end_matches('\n');
    let mut salt = [0u8; 16];
    dirbroker::clock::fill_random(&mut salt).unwrap();
    let pw = derive_pw(password.as_bytes(), &salt, &KdfParams::INTERACTIVE).unwrap();
    let mut u = User::new(&args[2], "SSO bench user").unwrap();
    u.public_value = Some(pw.public().unwrap().to_bytes());
    u.public_value_time = Some(dirbroker::clock::now());
    let kdf = PasswordKdf { alg: "argon2id".into(), salt: salt.to_vec().into(), params: KdfParams::INTERACTIVE };
    u.password_kdf = Some(kdf.to_value());
    dir.create(&u).await.unwrap();
    println!("user {} registered (Argon2id 64 MiB, t=3)", args[2]);
}
