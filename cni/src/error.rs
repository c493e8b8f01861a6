//! CNI errors: the spec's well-known codes, podnet's plugin-specific codes (100 and up), and
//! the JSON error document a runtime reads from stdout.

use serde_json::json;

/// The error codes this plugin returns. 1-99 are the spec's; 100 and up are podnet's own, one
/// per [`podnet::ErrorKind`] that has no spec equivalent (documented in docs/cni.md).
pub mod code {
    /// Incompatible CNI version.
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    /// Unsupported field in the network configuration.
    pub const UNSUPPORTED_FIELD: u32 = 2;
    /// Container unknown or does not exist.
    pub const UNKNOWN_CONTAINER: u32 = 3;
    /// Invalid necessary environment variables (the message names them).
    pub const INVALID_ENV: u32 = 4;
    /// I/O failure.
    pub const IO: u32 = 5;
    /// Failed to decode content.
    pub const DECODE: u32 = 6;
    /// Invalid network config.
    pub const INVALID_CONFIG: u32 = 7;
    /// Try again later.
    pub const TRY_AGAIN: u32 = 11;
    /// STATUS: the plugin is not available (no ADD can succeed now).
    pub const NOT_AVAILABLE: u32 = 50;
    /// podnet: the object exists with a different spec.
    pub const ALREADY_EXISTS: u32 = 100;
    /// podnet: an address pool is exhausted.
    pub const EXHAUSTED: u32 = 101;
    /// podnet: conflicts with an object someone else holds (e.g. a host port).
    pub const CONFLICT: u32 = 102;
    /// podnet: missing capability or permission.
    pub const PERMISSION: u32 = 103;
    /// podnet: the kernel refused a request.
    pub const KERNEL: u32 = 104;
    /// podnet: CHECK found the kernel differs from the record or from prevResult.
    pub const INCONSISTENT: u32 = 105;
    /// Internal error (libcni's `ErrInternal`).
    pub const INTERNAL: u32 = 999;
}

/// One CNI error: code, podnet's message and details (the error kind).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniError {
    /// The code (see [`code`]).
    pub code: u32,
    /// The message, podnet's "operation: cause".
    pub msg: String,
    /// Details: podnet's stable error kind, or more context.
    pub details: String,
}

impl CniError {
    /// An error with a code and a message.
    pub fn new(code: u32, msg: impl Into<String>) -> CniError {
        CniError { code, msg: msg.into(), details: String::new() }
    }

    /// Map a podnet error to the spec's code where one fits, podnet's own otherwise.
    pub fn from_podnet(e: &podnet::Error) -> CniError {
        use podnet::ErrorKind as K;
        let code = match e.kind() {
            K::InvalidArgument => code::INVALID_CONFIG,
            K::NotFound => code::UNKNOWN_CONTAINER,
            K::Io => code::IO,
            K::AlreadyExists => code::ALREADY_EXISTS,
            K::Exhausted => code::EXHAUSTED,
            K::Conflict => code::CONFLICT,
            K::Permission => code::PERMISSION,
            K::Kernel => code::KERNEL,
            K::Inconsistent => code::INCONSISTENT,
            K::NotReady => code::TRY_AGAIN,
            _ => code::INTERNAL,
        };
        CniError { code, msg: e.to_string(), details: format!("podnet error kind: {}", e.kind()) }
    }

    /// The JSON document the spec prescribes, in the requested version.
    pub fn to_json(&self, cni_version: &str) -> String {
        let mut v = json!({"cniVersion": cni_version, "code": self.code, "msg": self.msg});
        if !self.details.is_empty() {
            v["details"] = json!(self.details);
        }
        v.to_string()
    }
}

impl From<podnet::Error> for CniError {
    fn from(e: podnet::Error) -> CniError {
        CniError::from_podnet(&e)
    }
}

impl std::fmt::Display for CniError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CNI error {}: {}", self.code, self.msg)
    }
}

impl std::error::Error for CniError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn podnet_kinds_map_to_codes() {
        let e = podnet::Error::new(podnet::ErrorKind::Conflict, "map host ports of a", "taken");
        let c = CniError::from_podnet(&e);
        assert_eq!(c.code, code::CONFLICT);
        assert_eq!(c.msg, "map host ports of a: taken");
        let j: serde_json::Value = serde_json::from_str(&c.to_json("0.4.0")).unwrap();
        assert_eq!(j["cniVersion"], "0.4.0");
        assert_eq!(j["code"], 102);
        assert_eq!(j["details"], "podnet error kind: conflict");
        let inv = CniError::from_podnet(&podnet::Error::invalid("x", "y"));
        assert_eq!(inv.code, code::INVALID_CONFIG);
    }
}
