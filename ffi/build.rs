//! Link arguments of `libpodnet.so`: a versioned SONAME (`libpodnet.so.<major>`) and a version
//! script exporting only `podnet_*` (the Rust standard library's symbols stay local).

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").expect("cargo sets CARGO_PKG_VERSION_MAJOR");
    println!("cargo:rerun-if-changed=podnet.map");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libpodnet.so.{major}");
    println!("cargo:rustc-cdylib-link-arg=-Wl,--version-script={dir}/podnet.map");
}
