//! `podnet-cni`: installed as `podnet` in the runtime's CNI bin dir (`"type": "podnet"`).
#![allow(missing_docs, reason = "a binary: its documentation is docs/cni.md")]

use std::io::{Read, Write};

fn main() {
    let env = podnet_cni::Env::from_process();
    if env.command.is_none() {
        eprintln!(
            "podnet-cni: podnet's CNI plugin (spec 1.1.0; versions {}); run by a container runtime, see docs/cni.md",
            podnet_cni::SUPPORTED_VERSIONS.join(", ")
        );
        std::process::exit(1);
    }
    let mut stdin = vec![];
    if let Err(e) = std::io::stdin().read_to_end(&mut stdin) {
        let err = podnet_cni::CniError::new(podnet_cni::code::IO, format!("read stdin: {e}"));
        println!("{}", err.to_json("1.1.0"));
        std::process::exit(1);
    }
    let out = podnet_cni::run(&env, &stdin);
    let mut so = std::io::stdout().lock();
    let _ = so.write_all(out.stdout.as_bytes());
    let _ = so.flush();
    std::process::exit(out.status);
}
