//! Link arguments of `libpodnet.so`: a versioned SONAME and a version script exporting only
//! `podnet_*` (the Rust standard library's symbols stay local). The SONAME follows the header's
//! ABI policy: `libpodnet.so.0.<minor>` while the major version is 0 (a 0.x minor release may
//! change the ABI), `libpodnet.so.<major>` from 1.0 on.

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").expect("cargo sets CARGO_PKG_VERSION_MAJOR");
    println!("cargo:rerun-if-changed=podnet.map");
    println!("cargo:rerun-if-changed=build.rs");
    let minor = std::env::var("CARGO_PKG_VERSION_MINOR").expect("cargo sets CARGO_PKG_VERSION_MINOR");
    let soversion = if major == "0" { format!("0.{minor}") } else { major };
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libpodnet.so.{soversion}");
    println!("cargo:rustc-cdylib-link-arg=-Wl,--version-script={dir}/podnet.map");
}
