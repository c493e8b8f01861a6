//! podnet as a CNI plugin: the `podnet-cni` binary a runtime (containerd, CRI-O, podman) execs
//! with `CNI_*` variables and a network config on stdin. It speaks CNI spec 1.1.0 (ADD, DEL,
//! CHECK, GC, STATUS, VERSION) and answers 0.3.0 to 1.1.0 in the requested version's format.
//! Every call opens the node on a current-thread runtime, makes one call, and exits; the state
//! is podnet's own, so `podnet sandbox list`, `gc` and host ports see every pod. See docs/cni.md.

pub mod conf;
pub mod error;
mod linger;
pub mod result;
pub mod verbs;

use serde_json::{json, Value};

pub use conf::{sandbox_id, Env, NetConf, Version, SUPPORTED_VERSIONS};
pub use error::{code, CniError};

/// What one invocation prints on stdout and the exit status it ends with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The result, version info or error document (empty for a successful DEL/CHECK/GC/STATUS).
    pub stdout: String,
    /// 0 on success, 1 with a JSON error on stdout otherwise.
    pub status: i32,
}

/// The answer to VERSION.
pub fn version_info() -> Value {
    json!({"cniVersion": "1.1.0", "supportedVersions": SUPPORTED_VERSIONS})
}

/// Run one invocation: `env` is the `CNI_*` environment, `stdin` the network config. Meant for a
/// process that exits afterwards: the node opened for the call is deliberately leaked.
pub fn run(env: &Env, stdin: &[u8]) -> Outcome {
    let cmd = env.command.as_deref().unwrap_or_default();
    if cmd == "VERSION" {
        return Outcome { stdout: version_info().to_string(), status: 0 };
    }
    // Errors answer in the requested version when there is one to read.
    let parsed: Result<Value, _> = serde_json::from_slice(stdin);
    let ver = parsed
        .as_ref()
        .ok()
        .and_then(|v| v.get("cniVersion"))
        .and_then(Value::as_str)
        .and_then(Version::parse)
        .map_or("1.1.0", Version::as_str);
    let res = dispatch(cmd, env, parsed);
    match res {
        Ok(Some(v)) => Outcome { stdout: v.to_string(), status: 0 },
        Ok(None) => Outcome { stdout: String::new(), status: 0 },
        Err(e) => Outcome { stdout: e.to_json(ver), status: 1 },
    }
}

fn dispatch(cmd: &str, env: &Env, parsed: serde_json::Result<Value>) -> Result<Option<Value>, CniError> {
    if !matches!(cmd, "ADD" | "DEL" | "CHECK" | "GC" | "STATUS") {
        return Err(CniError::new(
            code::INVALID_ENV,
            format!("CNI_COMMAND {cmd:?} is not one of ADD, DEL, CHECK, GC, STATUS, VERSION"),
        ));
    }
    let v = parsed.map_err(|e| CniError::new(code::DECODE, format!("network config on stdin: {e}")))?;
    let conf = NetConf::parse(v)?;
    match cmd {
        "ADD" => verbs::add(&conf, env).map(Some),
        "DEL" => verbs::del(&conf, env).map(|()| None),
        "CHECK" => verbs::check(&conf, env).map(|()| None),
        "GC" => verbs::gc(&conf).map(|()| None),
        _ => verbs::status(&conf).map(|()| None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(cmd: &str) -> Env {
        Env { command: Some(cmd.into()), ..Env::default() }
    }

    #[test]
    fn version_and_bad_input() {
        let o = run(&env("VERSION"), b"");
        assert_eq!(o.status, 0);
        let v: Value = serde_json::from_str(&o.stdout).unwrap();
        assert_eq!(v["supportedVersions"].as_array().unwrap().len(), 5);
        let o = run(&env("FROB"), b"{}");
        let v: Value = serde_json::from_str(&o.stdout).unwrap();
        assert_eq!((o.status, v["code"].as_u64()), (1, Some(4)));
        let o = run(&env("ADD"), b"{not json");
        let v: Value = serde_json::from_str(&o.stdout).unwrap();
        assert_eq!(v["code"], 6);
        let o = run(&env("ADD"), br#"{"cniVersion":"0.4.0","name":"n","type":"podnet"}"#);
        let v: Value = serde_json::from_str(&o.stdout).unwrap();
        assert_eq!((v["code"].as_u64(), v["cniVersion"].as_str()), (Some(7), Some("0.4.0")));
        let o = run(&env("GC"), br#"{"cniVersion":"1.0.0","name":"n","type":"podnet","podCIDRs":["10.0.0.0/24"]}"#);
        let v: Value = serde_json::from_str(&o.stdout).unwrap();
        assert_eq!(v["code"], 1);
    }
}
